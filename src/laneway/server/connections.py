"""The HTTP connections of ``laneway serve``: how large a request's head may be, and
how long it may take to arrive.

uvicorn's httptools protocol reads a head (request line and headers) of any size and
waits for it without end. :class:`GuardedHttpTools` (the ``http`` protocol of
:func:`uvicorn_options`) bounds both, before any of laneway's code runs, so one client
cannot stall the others or hold a connection:

- at most :data:`MAX_HEADERS` headers and :data:`MAX_HEAD_BYTES` bytes of head: else
  431 and the connection is closed (the rest is not read);
- a head must be complete within :data:`HEAD_TIMEOUT_S` (± 25%, so that connections
  opened at once are not all ended at once) of its first byte (or of the connection's
  opening): else 408 (a silent connection is just closed);
- an answer given before the request's body has all arrived (a refusal: no key, too
  large, the wrong type) ends the connection, so a client cannot hold it by sending
  the rest slowly; the close lingers (:data:`LINGER_S`), so the client reads the answer
  rather than a reset.

A body's own read timeouts are the routes' (:mod:`laneway.server.gateway.intake`).
Both answers are the API's error shape with a request id, header and body alike.
"""

from __future__ import annotations

import asyncio
import json
import random
from typing import Any, ClassVar

from uvicorn.protocols.http.httptools_impl import STATUS_LINE, HttpToolsProtocol

from laneway.wire.errors import REQUEST_ID, error_body
from laneway.wire.ids import new_id

#: Headers a request may carry (the SDKs send about 15; a proxy adds a few).
MAX_HEADERS = 100
#: Bytes of a request's head: the request line and all its headers.
MAX_HEAD_BYTES = 64 * 1024
#: Seconds a request's head may take to arrive.
HEAD_TIMEOUT_S = 10.0
#: How long a refused connection's further bytes are read (and dropped) before it closes.
LINGER_S = 2.0
_CLOSE = (b"connection", b"close")
#: Bytes of a head parsed at a time.
_SLICE = 8192
#: uvicorn's ``http`` option for :class:`GuardedHttpTools` (a string: worker processes
#: import it themselves).
HTTP_PROTOCOL = "laneway.server.connections:GuardedHttpTools"


def raw_error(status: int, error_type: str, message: str) -> bytes:
    """A whole HTTP answer in the API's error shape, closing the connection."""
    request_id = new_id("req")
    body = json.dumps(error_body(error_type, message, request_id)).encode()
    head = [STATUS_LINE[status], b"content-type: application/json\r\n",
            b"content-length: %d\r\n" % len(body), REQUEST_ID.encode() + b": ",
            request_id.encode(), b"\r\nconnection: close\r\n\r\n"]
    return b"".join(head) + body


class GuardedHttpTools(HttpToolsProtocol):
    """uvicorn's httptools protocol with the limits of the module docstring."""

    head_timeout_s: ClassVar[float] = HEAD_TIMEOUT_S
    max_headers: ClassVar[int] = MAX_HEADERS
    max_head_bytes: ClassVar[int] = MAX_HEAD_BYTES

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._in_head = True  # the next bytes belong to a request's head
        self._head_bytes = 0  # bytes received since that head began
        self._head_size = 0  # of its request line and headers, as parsed
        self._headers = 0
        self._over = False  # the head passed a limit: seen by the parser's callbacks
        self._refused = False  # answered (or closed): nothing more is read
        self._lingering = False
        self._timer: asyncio.TimerHandle | None = None

    # -- the timer --------------------------------------------------------------------
    def _arm(self) -> None:
        if self._timer is None:  # ±25%: connections opened together do not end together
            after = self.head_timeout_s * random.uniform(0.75, 1.25)
            self._timer = self.loop.call_later(after, self._timed_out)

    def _disarm(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _timed_out(self) -> None:
        self._timer = None
        busy = self.cycle is not None and not self.cycle.response_complete
        if not self._in_head or busy or self.transport.is_closing():
            return
        if self._head_bytes:
            self._refuse(408, "invalid_request_error", "the request's headers arrived too "
                         f"slowly (more than {self.head_timeout_s:g} s)")
        else:
            self._refused = True
            self.transport.close()

    def _refuse(self, status: int, error_type: str, message: str) -> None:
        if self._refused:
            return
        self._refused = True
        self._disarm()
        if self.transport.is_closing():
            return
        self.transport.write(raw_error(status, error_type, message))
        self._linger()

    def _linger(self) -> None:
        """Close, lingering: what the client still sends is read and dropped for a moment
        (:data:`LINGER_S`), so its kernel does not reset the connection (and lose the
        answer) before the client reads the answer."""
        self._refused = True
        if self._lingering or self.transport.is_closing():
            return
        self._lingering = True
        if not self.transport.can_write_eof():
            self.transport.close()
            return
        self.flow.resume_reading()
        self.transport.write_eof()
        self.loop.call_later(LINGER_S, self.transport.close)

    def _too_large(self) -> None:
        self._refuse(431, "invalid_request_error", "the request's headers are too large "
                     f"(at most {self.max_headers} headers and {self.max_head_bytes} bytes)")

    # -- the protocol -----------------------------------------------------------------
    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if self._refused:
            return  # answered already: the rest is dropped
        # A head is parsed a slice at a time: one over a limit is refused after at most
        # a slice more (not after all a client sent at once).
        done = 0
        while self._in_head and done < len(data) and not self._refused:
            piece = data[done:done + _SLICE] if done or len(data) > _SLICE else data
            done += len(piece)
            self._feed(piece)
        if done < len(data) and not self._refused and self.transport.get_protocol() is self:
            super().data_received(data[done:])  # a body, parsed whole (unless upgraded)

    def _feed(self, data: bytes) -> None:
        if self._in_head:
            self._head_bytes += len(data)
        super().data_received(data)
        if self._over or (self._in_head and self._head_bytes > self.max_head_bytes):
            self._too_large()

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._arm()

    def on_url(self, url: bytes) -> None:
        self._head_size += len(url)
        super().on_url(url)

    def on_header(self, name: bytes, value: bytes) -> None:
        self._headers += 1
        self._head_size += len(name) + len(value) + 4
        if self._headers > self.max_headers or self._head_size > self.max_head_bytes:
            self._over = True  # answered once the parser returns: nothing more is kept
        if not self._over:
            super().on_header(name, value)

    def on_headers_complete(self) -> None:
        self._disarm()
        self._in_head = False
        self._head_bytes = self._head_size = self._headers = 0
        if self._over or self._refused:
            return  # no request is started for a refused head
        super().on_headers_complete()
        cycle = self.cycle
        if cycle is None:
            return
        # Its answer may come before all of its body: then it says the connection ends
        # (``connection: close``), and the close lingers.
        cycle.transport = _Lingering(self)  # type: ignore[assignment]
        send = cycle.send

        async def closing_send(message: Any) -> None:
            if message["type"] == "http.response.start" and cycle.more_body:
                message = {**message, "headers": [*message.get("headers", ()), _CLOSE]}
            await send(message)

        cycle.send = closing_send  # type: ignore[method-assign]

    def on_body(self, body: bytes) -> None:
        if not (self._over or self._refused):
            super().on_body(body)

    def on_message_complete(self) -> None:
        self._in_head = True
        if not (self._over or self._refused):
            super().on_message_complete()

    def on_response_complete(self) -> None:
        cycle = self.cycle
        if cycle is not None and cycle.more_body and not cycle.disconnected:
            # Answered before the client sent all of its body (a refusal): the
            # connection ends, lingering, rather than wait for a body nobody reads.
            self.server_state.total_requests += 1
            self._linger()
            return
        super().on_response_complete()



class _Lingering:
    """The transport a request's cycle writes to: when the answer closes the connection
    before the request's body has all arrived (a refusal, ``connection: close``), the
    close lingers (:meth:`GuardedHttpTools._linger`)."""

    def __init__(self, protocol: GuardedHttpTools) -> None:
        self._protocol = protocol
        self._transport = protocol.transport

    def write(self, data: bytes) -> None:
        self._transport.write(data)

    def is_closing(self) -> bool:
        return self._transport.is_closing()

    def close(self) -> None:
        cycle = self._protocol.cycle
        if cycle is not None and cycle.more_body and not cycle.disconnected:
            self._protocol._linger()
        else:
            self._transport.close()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._transport, name)
