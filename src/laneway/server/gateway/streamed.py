"""A relayed stream written straight to the client's connection.

Each chunk the upstream's connection gives (the events that arrived together, as one
piece) is one write to the client's: no task group, no per-chunk wrapper. The client's
disconnect is noticed by its :class:`~.admission.ClientWatch`, kept running while the
stream is written: the moment it sees the client gone, the writing task is cancelled
(and with it the upstream's stream), as Starlette's ``StreamingResponse`` does with a
second task listening for the disconnect on every stream.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Mapping

from starlette.responses import Response
from starlette.types import Receive, Scope, Send

from laneway.server.gateway.admission import ClientWatch

#: Writes a stream's body (never its start or its end) with the given ``send``.
Body = Callable[[Send], Awaitable[None]]


class RelayedStream(Response):
    """A 200 stream whose body ``body`` writes; ``never_started`` is called if the
    client left before the answer's head went out (the body never ran)."""

    def __init__(self, body: Body, *, watch: ClientWatch, never_started: Callable[[], None],
                 headers: Mapping[str, str]) -> None:
        self.status_code = 200
        self.background = None
        self.init_headers(headers)
        self._body = body
        self._watch = watch
        self._never_started = never_started

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        task = asyncio.current_task()
        assert task is not None
        writing = True
        started = False

        def gone() -> None:
            if writing:
                task.cancel()

        self._watch.when_gone(gone)
        try:
            await send({"type": "http.response.start", "status": 200,
                        "headers": self.raw_headers})
            started = True
            await self._body(send)
            await send({"type": "http.response.body", "body": b"", "more_body": False})
        except asyncio.CancelledError:
            if not self._watch.gone:
                raise
            task.uncancel()  # the client left: its stream ends here
        finally:
            writing = False
            self._watch.stop()
            if not started:
                self._never_started()
