"""Waiting for a realtime run's claimer and workers while watching the tasks it needs."""

from __future__ import annotations

import asyncio


async def until_done(claimer: asyncio.Task[None], workers: list[asyncio.Task[None]], *,
                     watch: tuple[asyncio.Task[None] | None, ...]) -> None:
    """Wait for the claimer, then the workers. A watched task that fails (the ledger
    lost for good: results no longer durable, leases no longer renewed) ends the run
    with its error, instead of leaving the workers waiting for commits forever."""
    async def body() -> None:
        await claimer
        await asyncio.gather(*workers)

    main = asyncio.ensure_future(body())
    pending: set[asyncio.Future[None]] = {main, *(t for t in watch if t is not None)}
    try:
        while main in pending:
            done, pending = await asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)
            for task in done:
                task.result()
    finally:
        main.cancel()
