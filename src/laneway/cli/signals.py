"""Ctrl-C and SIGTERM for long commands: the first stops cleanly, the second abandons."""

from __future__ import annotations

import asyncio
import contextlib
import signal

from laneway.cli.app import console_err


def stop_on_signals(message: str) -> asyncio.Event:
    """Return an event set by the first SIGINT/SIGTERM (after printing ``message``);
    a second one cancels the calling task. Call from inside the running task."""
    stop = asyncio.Event()
    main = asyncio.current_task()
    presses = 0

    def on_signal() -> None:
        nonlocal presses
        presses += 1
        if presses == 1:
            console_err.print(f"\n[yellow]{message}[/yellow]")
            stop.set()
        elif main is not None:
            main.cancel()

    loop = asyncio.get_running_loop()
    with contextlib.suppress(NotImplementedError, RuntimeError):
        loop.add_signal_handler(signal.SIGINT, on_signal)
        loop.add_signal_handler(signal.SIGTERM, on_signal)
    return stop
