"""Requests relayed upstream: admitted by the governor, retried, answered.

The client's body goes upstream byte for byte; the upstream's answer comes back with its
status, headers and body, a stream event by event as it arrives. Between the two the
gateway owns the policy a naive client gets wrong, for Messages (:meth:`Relay.messages`)
and for the calls that use no Messages quota, ``count_tokens`` and models
(:meth:`Relay.passthrough`), alike:

- a Messages request waits for the governor in its lane (see :mod:`.admission`);
- no answer at all (the upstream cannot be reached, or drops the connection before its
  answer is complete, or times out) is an outage, not the request's fault: it is tried
  again after 1, 2, 4, 8, 8, ... s (jittered, as runs wait out an outage, see
  :mod:`laneway.runners.api_wait`) until the lane's wait limit, so an upstream down for
  20 s costs a client 20 s, not an error; past the limit the client gets a 502 in the
  API's shape that says what happened in laneway's words (never a library's text);
- a 429, 529 or 5xx is an answer: tried again up to 6 times with backoff (a 429, which
  is not the request's fault, as often as the limit allows, after its ``retry-after``;
  it also pauses the background lane), inside the lane's wait limit; then the client
  gets the upstream's last answer as it was, with the upstream's own ``retry-after``;
- every retryable answer the gateway gives up on carries ``x-should-retry: false``: the
  gateway has applied the policy already, and an SDK that tried again (2 more times by
  default) would multiply the wait (a persistent 529 took 72 s to reach the app);
- any other 4xx is the request's fault and goes back as is, at once;
- once a stream has started nothing is tried again: an upstream that drops it mid-way
  ends it with an ``error`` event, as the API itself does.

Neither call raises :class:`~laneway.errors.ProviderError`: every failure upstream is
answered. They raise ``ClientGone`` (the client left) and, for Messages,
``WaitedTooLong`` (the lane's quota stayed spent, with no upstream answer to give) and
``Revoked`` (the key was revoked while the request waited: nothing was sent).

A Messages request whose final usage is not seen (a stream the client left or the
upstream dropped, an upstream that never answered) ends ``complete=False``: it is
charged its worst case (:meth:`.exchange.Exchange.end`).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from functools import partial
from typing import Any

from fastapi.responses import Response
from starlette.types import Send

from laneway.errors import ProviderError, ProviderTimeoutError
from laneway.governor.core import Governor
from laneway.governor.state import Permit
from laneway.provider import relay as provider_relay
from laneway.provider.client import Provider, retry_after_s
from laneway.provider.relay import RawResponse
from laneway.runners.retry import RetryPolicy
from laneway.server.gateway.admission import ClientWatch, WaitedTooLong, WaitLimits, admit
from laneway.server.gateway.exchange import Exchange
from laneway.server.gateway.headers import client_headers
from laneway.server.gateway.revocations import Revocations, Revoked
from laneway.server.gateway.streamed import RelayedStream
from laneway.wire.errors import SHOULD_RETRY, api_error
from laneway.wire.sse import SseTap, error_event
from laneway.wire.status import Kind, Outcome, answer_outcome

#: Error answers: 6 tries, 1, 2, 4, 8, 16 s apart (equal jitter).
_ANSWERS = RetryPolicy()
#: No answer: as long as the wait limit allows, 1, 2, 4, 8, 8, ... s apart.
_SILENCE = RetryPolicy(cap_s=8.0)
_AGAIN = ProviderError("again")  # a backoff with no retry-after of the error's own
#: Ends a relayed stream whose upstream connection dropped (the API's own error event).
_DROPPED = error_event("api_error", "the upstream connection dropped mid-stream")


#: A request that waited longer than this for the governor has its key checked again
#: before it is sent (a revoke refuses the requests it has queued).
RECHECK_AFTER_S = 0.2


class _NoAnswer(Exception):
    """The upstream gave no answer to one try: what happened, in laneway's words."""

    def __init__(self, err: ProviderError, *, cut_short: bool, timeout_s: float) -> None:
        if isinstance(err, ProviderTimeoutError) and err.status is None:
            what = f"it did not answer within {timeout_s:g} s"
        elif cut_short:
            what = "its connection dropped before the answer was complete"
        else:
            what = "it could not be reached, or closed the connection before answering"
        super().__init__(what)
        self.what = what


@dataclass
class _Tries:
    """One request's tries upstream, and when (whether) to try again."""

    deadline: float
    started: float = field(default_factory=time.monotonic)
    sends: int = 0
    #: Error answers other than 429 (each uses one of :data:`_ANSWERS`' attempts).
    failed: int = 0
    #: Tries that got no answer.
    silent: int = 0

    def after_answer(self, answer: Outcome, headers: Mapping[str, str]) -> float | None:
        """Seconds to wait before trying again after an answer; None: give it."""
        if not answer.retry:
            return None
        if answer.kind is Kind.UNREACHABLE:  # a proxy's 5xx: the upstream was not reached
            return self.after_silence()
        hint = retry_after_s(headers)
        if answer.kind is Kind.RATE_LIMITED:
            wait = hint if hint is not None else 5.0
        else:
            self.failed += 1
            if self.failed >= _ANSWERS.max_attempts:
                return None
            wait = hint if hint is not None else _ANSWERS.delay_s(_AGAIN, attempts=self.failed)
        return wait if time.monotonic() + wait <= self.deadline else None

    def after_silence(self) -> float | None:
        """Seconds to wait before trying again after no answer (the last try is at the
        deadline itself); None: the wait limit has passed."""
        self.silent += 1
        left = self.deadline - time.monotonic()
        if left <= 0:
            return None
        return min(left, _SILENCE.delay_s(_AGAIN, attempts=self.silent))

    def gave_up(self, silence: _NoAnswer, limit: str) -> Response:
        """The 502 for an upstream that never answered, however long it was waited for."""
        took = time.monotonic() - self.started
        tries = "once" if self.sends == 1 else f"{self.sends} times"
        return api_error(502, "api_error", f"the upstream API gave no answer: {silence.what} "
                         f"(laneway tried {tries} in {took:.0f} s; {limit})",
                         retried=self.sends > 1)


def _relayed(status: int, body: bytes, headers: Mapping[str, str]) -> Response:
    """The upstream's answer as it was; one the gateway gave up retrying says so."""
    out = client_headers(headers)
    if answer_outcome(status, body).retry:
        out[SHOULD_RETRY] = "false"
    return Response(body, status_code=status, headers=out)


@dataclass
class Relay:
    governor: Governor
    provider: Provider
    waits: WaitLimits
    #: Called once with each request's :class:`Exchange` when its answer is complete.
    finish: Callable[[Exchange], None]
    upstream_timeout_s: float = 600.0
    #: Revokes of the keys of requests waiting in a lane.
    revocations: Revocations | None = None

    async def messages(self, ex: Exchange, watch: ClientWatch, content: bytes,
                       headers: dict[str, str], *, input_tokens: int,
                       max_tokens: int, query: dict[str, str] | None = None) -> Response:
        """Answer one ``POST /v1/messages`` (see the module docstring)."""
        tries = _Tries(ex.arrived + self.waits.of(ex.lane))
        last: Callable[[], Response] | None = None
        while True:
            since = time.monotonic()
            with self._watching(ex.key_id) as revoked:
                try:
                    permit = await admit(self.governor, watch, ex.lane, ex.model,
                                         input_tokens=input_tokens, max_tokens=max_tokens,
                                         deadline=tries.deadline, stop=revoked)
                except WaitedTooLong:
                    if last is None:
                        raise
                    return last()  # the limit passed while the lane was paused by a failure
            ex.waited(since)
            if self.revocations is not None and time.monotonic() - since > RECHECK_AFTER_S \
                    and not await self.revocations.allowed(ex.key_id):
                self.governor.release(permit, outcome="canceled")
                raise Revoked
            tries.sends += 1
            ex.sent = True
            try:
                response, body = await self._send(
                    permit, watch, "POST", "/v1/messages", content=content,
                    headers=headers, query=query, stream=ex.streamed,
                    timeout_s=self.upstream_timeout_s)
            except _NoAnswer as silence:
                wait = tries.after_silence()
                limit = f"the {ex.lane} lane's wait limit is {self.waits.of(ex.lane):g} s"
                # Whether the upstream ran it and billed it cannot be known: worst case.
                last = self._ender(ex, partial(tries.gave_up, silence, limit), complete=False)
            else:
                status = response.status_code
                if status == 200:
                    if body is None:
                        self.governor.heard(permit, response.headers)
                        return self._stream(ex, permit, response, watch)
                    return self._whole(ex, permit, response, body)
                answer = answer_outcome(status, body or b"")
                self.governor.release(
                    permit, outcome=answer.governor, headers=response.headers,
                    retry_after_s=retry_after_s(response.headers) if status == 429 else None)
                wait = tries.after_answer(answer, response.headers)
                last = self._ender(ex, partial(_relayed, status, body or b"",
                                               response.headers))
            if wait is None:
                return last()
            ex.upstream_errors += 1
            await watch.sleep(wait)

    def _watching(self, key_id: str | None) -> contextlib.AbstractContextManager[
            asyncio.Future[None] | None]:
        if self.revocations is None:
            return contextlib.nullcontext()
        return self.revocations.watching(key_id)

    async def passthrough(self, watch: ClientWatch, method: str, path: str, *,
                          wait_s: float, content: bytes | None = None,
                          headers: dict[str, str] | None = None,
                          query: dict[str, str] | None = None,
                          timeout_s: float = 60.0) -> Response:
        """Relay a call that uses no Messages quota (``count_tokens``, models) as it is,
        tried again as Messages are (no governor, no record) within ``wait_s``."""
        tries = _Tries(time.monotonic() + wait_s)
        while True:
            tries.sends += 1
            try:
                response, body = await self._send(None, watch, method, path, content=content,
                                                  headers=headers, query=query, stream=False,
                                                  timeout_s=timeout_s)
            except _NoAnswer as silence:
                wait = tries.after_silence()
                if wait is None:
                    return tries.gave_up(silence, f"its wait limit is {wait_s:g} s")
            else:
                wait = tries.after_answer(answer_outcome(response.status_code, body or b""),
                                          response.headers)
                if wait is None:
                    return _relayed(response.status_code, body or b"", response.headers)
            await watch.sleep(wait)

    async def _send(self, permit: Permit | None, watch: ClientWatch, method: str, path: str,
                    *, content: bytes | None, headers: dict[str, str] | None,
                    query: dict[str, str] | None, stream: bool, timeout_s: float,
                    ) -> tuple[RawResponse, bytes | None]:
        """The upstream's response, and its body unless it is a stream to relay; no
        answer (none, or one cut short) raises :class:`_NoAnswer`. The permit is given
        back on any failure."""
        cut_short = False
        given_back = contextlib.nullcontext() if permit is None else \
            self.governor.given_back_on_failure(permit)
        try:
            with given_back:
                response = await watch.race(provider_relay.send(
                    self.provider, method, path, content=content, headers=headers,
                    query=query, timeout_s=timeout_s))
                if stream and response.status_code == 200:
                    return response, None
                cut_short = True
                return response, await watch.race(provider_relay.read(response))
        except ProviderError as err:
            raise _NoAnswer(err, cut_short=cut_short, timeout_s=timeout_s) from err

    def _ender(self, ex: Exchange, answer: Callable[[], Response], *,
               complete: bool = True) -> Callable[[], Response]:
        """``answer``, once the request is recorded with its status."""
        def end() -> Response:
            response = answer()
            self._end(ex, response.status_code, complete=complete)
            return response
        return end

    def _end(self, ex: Exchange, status: int, usage: dict[str, Any] | None = None, *,
             complete: bool = True) -> None:
        ex.end(status, usage=usage, local=self.provider.costs_nothing, complete=complete)
        self.finish(ex)

    def _whole(self, ex: Exchange, permit: Permit, response: RawResponse,
               body: bytes) -> Response:
        usage: dict[str, Any] = {}
        with contextlib.suppress(ValueError, AttributeError):
            answer = json.loads(body)
            usage = answer.get("usage") or {}
            if isinstance(answer.get("model"), str):
                ex.answered_model = answer["model"]
        self.governor.release(permit, outcome="ok", usage=usage, headers=response.headers)
        ex.usage = usage
        ex.ttft_s = time.monotonic() - ex.arrived
        self._end(ex, 200)
        return Response(body, status_code=200, headers=client_headers(response.headers))

    def _stream(self, ex: Exchange, permit: Permit, response: RawResponse,
                watch: ClientWatch) -> Response:
        tap = SseTap()
        # Bytes as they came off the connection (no decoder, no re-chunking), unless
        # the upstream encoded them: its content-encoding is not relayed.
        raw = response.headers.get("content-encoding", "identity") == "identity"
        chunks = response.aiter_raw() if raw else response.aiter_bytes()

        async def body(send: Send) -> None:
            outcome = "error"  # the client left, or the upstream dropped the stream
            dropped = False
            try:
                while True:
                    try:
                        chunk = await anext(chunks)
                    except StopAsyncIteration:
                        break
                    except ProviderError:
                        raise
                    except Exception:  # the upstream dropped it: end it as the API would
                        ex.upstream_errors += 1
                        dropped = True
                        await send({"type": "http.response.body", "body": _DROPPED,
                                    "more_body": True})
                        break
                    tap.feed(chunk)
                    await send({"type": "http.response.body", "body": chunk,
                                "more_body": True})
                    # Once the chunk is handed to the client's connection: the time to
                    # first token is the first text the client gets, not the upstream's
                    # content_block_start (sent before the model wrote).
                    if ex.ttft_s is None and tap.first_delta_at is not None:
                        ex.ttft_s = time.monotonic() - ex.arrived
                if tap.stopped and not dropped:
                    outcome = "ok"
            finally:
                with contextlib.suppress(Exception):
                    await response.aclose()
                self.governor.release(permit, outcome=outcome, headers=response.headers,
                                      usage=tap.usage if outcome == "ok" else None)
                ex.answered_model = tap.model
                # A stream not seen to its end (the client left: the upstream is cut
                # off; or it dropped) may have been billed more than its usage so far.
                self._end(ex, 200, tap.usage, complete=outcome == "ok")

        def never_started() -> None:  # the client left before the first byte
            if not permit.released:
                self.governor.release(permit, outcome="canceled")
                self._end(ex, 499, complete=False)

        return RelayedStream(body, watch=watch, never_started=never_started,
                             headers=client_headers(response.headers))
