"""Reading a request body with a limit: the one reader of the local API, the gateway and
``laneway serve``'s runs routes.

A declared ``Content-Length`` over the limit is refused before a byte is read; a body
without one (chunked) is counted as it arrives and refused as soon as it passes the
limit, so the server never holds more than the limit. Either way the refusal is the
API's 413 (:func:`laneway.wire.errors.too_large`), in the same words on every route.
Optionally, the body must arrive with no pause over ``idle_s`` and within ``total_s``
(:class:`TooSlow`). A client that leaves raises Starlette's ``ClientDisconnect``, for
the caller to answer (or not) as it does.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

from laneway.wire.errors import too_large

if TYPE_CHECKING:
    from starlette.requests import Request


class TooSlow(Exception):
    """The body paused longer than ``idle_s``, or took longer than ``total_s`` in all."""


async def read_body(request: Request, limit: int, *, idle_s: float | None = None,
                    total_s: float | None = None) -> bytes:
    """The request's body, at most ``limit`` bytes (else :func:`too_large` is raised)."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise too_large(limit)
    chunks: list[bytes] = []
    size = 0
    stream = request.stream().__aiter__()
    timed = idle_s is not None or total_s is not None
    loop = asyncio.get_running_loop()
    deadline = loop.time() + (total_s if total_s is not None else float("inf"))
    while True:
        try:
            if timed:
                wait = min(idle_s if idle_s is not None else float("inf"),
                           deadline - loop.time())
                async with asyncio.timeout(max(wait, 0.0)):  # no task per chunk
                    chunk = await anext(stream)
            else:
                chunk = await anext(stream)
        except StopAsyncIteration:
            break
        except TimeoutError:
            raise TooSlow from None
        size += len(chunk)
        if size > limit:
            raise too_large(limit)
        chunks.append(chunk)
    return b"".join(chunks)


__all__ = ["TooSlow", "read_body"]
