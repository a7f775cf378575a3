"""The Typer app and the consoles every command writes to."""

from __future__ import annotations

import typer
from rich.console import Console

app = typer.Typer(
    name="laneway",
    help=(
        "Run Claude workloads in the mode each one needs: streaming for a person who is "
        "waiting, batch (parallel realtime or native Message Batches at half price) for "
        "bulk work, with a durable ledger so nothing is lost or paid for twice.\n\n"
        "With no ANTHROPIC_API_KEY, laneway starts its own local API on a loopback port, "
        "served by a small model, so every command works offline."
    ),
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    # Click's plain help: it wraps each paragraph to the terminal and every option's
    # text beside it (Rich's boxes cut option names and left one-word lines at 80 columns).
    rich_markup_mode=None,
)

#: Results and answers go to stdout; progress, notices and errors to stderr.
console = Console()
console_err = Console(stderr=True)


@app.callback()
def _root() -> None:
    """laneway: streaming for people, batch for bulk work, one durable ledger."""
