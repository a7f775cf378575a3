"""One Messages request relayed upstream: admitted by the governor, retried, answered.

The client's body goes upstream byte for byte; the upstream's answer comes back with its
status, headers and body, a stream event by event as it arrives. Between the two the
gateway owns the policy a naive client gets wrong:

- the request waits for the governor in its lane (see :mod:`.admission`);
- a 429, 529, 5xx, or no answer at all (none, or one cut short) is tried again inside
  the lane's wait limit (a 429 pauses the background lane for its ``retry-after``; other
  errors back off with jitter), so the client does not see it; past the limit it gets
  the upstream's last error as it was, with the upstream's own ``retry-after``;
- any other 4xx is the request's fault and goes back as is, at once;
- once a stream has started nothing is tried again: an upstream that drops it mid-way
  ends it with an ``error`` event, as the API itself does.
"""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any

from fastapi.responses import Response, StreamingResponse

from laneway.errors import ProviderError
from laneway.governor.core import Governor, Permit
from laneway.provider import relay as provider_relay
from laneway.provider.client import Provider, retry_after_s
from laneway.provider.relay import RawResponse
from laneway.runners.retry import RetryPolicy
from laneway.server.gateway.admission import ClientWatch, WaitLimits, admit
from laneway.server.gateway.exchange import Exchange
from laneway.server.gateway.headers import client_headers
from laneway.wire.sse import SseTap

#: Statuses worth another try: rate limited, overloaded, the upstream's own failures.
_RETRYABLE = frozenset({408, 429, 500, 502, 503, 504, 529})
_POLICY = RetryPolicy()
#: Ends a relayed stream whose upstream connection dropped (the API's own error event).
_DROPPED = (b'event: error\ndata: {"type":"error","error":{"type":"api_error",'
            b'"message":"the upstream connection dropped mid-stream"}}\n\n')


def _outcome(status: int, body: bytes) -> str:
    if status == 429:
        return "rate_limited"
    if status == 529 or b"overloaded_error" in body:
        return "overloaded"
    return "error"


@dataclass
class Relay:
    governor: Governor
    provider: Provider
    waits: WaitLimits
    #: Called once with each request's :class:`Exchange` when its answer is complete.
    finish: Callable[[Exchange], None]
    upstream_timeout_s: float = 600.0

    async def messages(self, ex: Exchange, watch: ClientWatch, content: bytes,
                       headers: dict[str, str], *, input_tokens: int,
                       max_tokens: int, query: dict[str, str] | None = None) -> Response:
        """Answer one ``POST /v1/messages`` (raises ``ClientGone`` or ``WaitedTooLong``)."""
        deadline = ex.arrived + self.waits.of(ex.lane)
        attempts = 0
        while True:
            since = time.monotonic()
            permit = await admit(self.governor, watch, ex.lane, ex.model,
                                 input_tokens=input_tokens, max_tokens=max_tokens,
                                 deadline=deadline)
            ex.waited(since)
            try:
                response, body = await self._send(ex, permit, watch, content, headers,
                                                  query)
            except ProviderError as err:  # no answer: try again while there is time
                attempts += 1
                wait = _POLICY.delay_s(err, attempts=attempts)
                if time.monotonic() + wait > deadline or attempts >= _POLICY.max_attempts:
                    raise
                ex.upstream_errors += 1
                await watch.sleep(wait)
                continue
            status = response.status_code
            if status == 200:
                if body is None:
                    watch.stop()
                    return self._stream(ex, permit, response)
                return self._whole(ex, permit, response, body)
            wait_hint = retry_after_s(response.headers)
            self.governor.release(permit, outcome=_outcome(status, body or b""),
                                  headers=response.headers,
                                  retry_after_s=wait_hint if status == 429 else None)
            attempts += status != 429
            wait = wait_hint if wait_hint is not None else 5.0 if status == 429 else \
                _POLICY.delay_s(ProviderError("retry"), attempts=attempts)
            if (status not in _RETRYABLE or attempts >= _POLICY.max_attempts
                    or time.monotonic() + wait > deadline):
                return self._answer(ex, status, body or b"", response.headers)
            ex.upstream_errors += 1
            await watch.sleep(wait)

    async def _send(self, ex: Exchange, permit: Permit, watch: ClientWatch, content: bytes,
                    headers: dict[str, str], query: dict[str, str] | None
                    ) -> tuple[RawResponse, bytes | None]:
        """The upstream's response, and its body unless it is a stream to relay. A body
        cut short is no answer (:class:`ProviderError`); the permit is given back on any
        failure."""
        with self.governor.given_back_on_failure(permit):
            response = await watch.race(provider_relay.send(
                self.provider, "POST", "/v1/messages", content=content, headers=headers,
                query=query, timeout_s=self.upstream_timeout_s))
            if ex.streamed and response.status_code == 200:
                return response, None
            return response, await watch.race(provider_relay.read(response))

    def _answer(self, ex: Exchange, status: int, body: bytes, headers: Any) -> Response:
        ex.end(status, local=self.provider.is_local)
        self.finish(ex)
        return Response(body, status_code=status, headers=client_headers(headers))

    def _whole(self, ex: Exchange, permit: Permit, response: RawResponse,
               body: bytes) -> Response:
        usage: dict[str, Any] = {}
        with contextlib.suppress(ValueError, AttributeError):
            usage = json.loads(body).get("usage") or {}
        self.governor.release(permit, outcome="ok", usage=usage, headers=response.headers)
        ex.usage = usage
        ex.ttft_s = time.monotonic() - ex.arrived
        return self._answer(ex, 200, body, response.headers)

    def _stream(self, ex: Exchange, permit: Permit, response: RawResponse) -> Response:
        tap = SseTap()

        async def events() -> AsyncIterator[bytes]:
            outcome = "error"  # the client left, or the upstream dropped the stream
            try:
                try:
                    async for chunk in response.aiter_bytes():
                        tap.feed(chunk)
                        ex.first_content(tap.first_content_at)
                        yield chunk
                except ProviderError:
                    raise
                except Exception:  # the upstream dropped it: end it as the API would
                    ex.upstream_errors += 1
                    yield _DROPPED
                else:
                    outcome = "ok" if tap.stopped else "error"
            finally:
                with contextlib.suppress(Exception):
                    await response.aclose()
                self.governor.release(permit, outcome=outcome, headers=response.headers,
                                      usage=tap.usage if outcome == "ok" else None)
                ex.end(200, usage=tap.usage, local=self.provider.is_local)
                self.finish(ex)

        def never_started() -> None:  # the client left before the first byte
            if not permit.released:
                self.governor.release(permit, outcome="canceled")
                ex.end(499, local=self.provider.is_local)
                self.finish(ex)

        return _Relayed(events(), never_started, status_code=200,
                        headers=client_headers(response.headers))


class _Relayed(StreamingResponse):
    """A relayed stream whose permit is given back even if it never starts (the client
    left between the upstream's answer and the first byte)."""

    def __init__(self, content: AsyncIterator[bytes], on_close: Callable[[], None],
                 **kwargs: Any) -> None:
        super().__init__(content, **kwargs)
        self._on_close = on_close

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            self._on_close()
