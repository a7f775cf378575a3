"""The one place the ``anthropic`` SDK is called, and where its errors become laneway's.

Which backend a :class:`Provider` talks to (the real API, or the embedded local API
started in-process) is chosen by :func:`laneway.provider.backend.open_provider`. Either way the
same ``AsyncAnthropic`` client is used, with the SDK's own retries turned off: laneway
owns the retry policy (the SDK would ignore a ``retry-after`` over 60 s and cannot pause
a whole lane).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import sys
import time
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import anthropic

from laneway.errors import (
    AuthenticationError,
    ConnectionLostError,
    OverloadedError,
    ProviderError,
    ProviderTimeoutError,
    RateLimitedError,
    RequestError,
    ServerError,
    StreamError,
)
from laneway.provider.stream import Gaps, IdleBound, apply_event, read_events
from laneway.wire.status import Kind, outcome


def _transport_errors(name: str) -> tuple[type[BaseException], ...]:
    # Only the transports the SDK imported (it has, above): none other can raise, and
    # importing httpx when the SDK uses httpx2 cost ~10 ms of start-up (its CLI: click,
    # pygments).
    modules = (sys.modules.get(m) for m in ("httpx2", "httpx"))
    return tuple(getattr(m, name) for m in modules if m is not None)


#: Raw transport errors met while a body is read outside the SDK's own wrapping (the
#: gateway's relay reads the response itself; SDKs before 2.17 let them through while a
#: stream was read, 2.17 wraps them as ``APIConnectionError``/``APITimeoutError``).
TRANSPORT_ERRORS = _transport_errors("TransportError")
TRANSPORT_TIMEOUTS = _transport_errors("TimeoutException")


def retry_after_s(headers: Any) -> float | None:
    """Seconds to wait from ``retry-after-ms`` or ``retry-after``, if either is given."""
    if headers is None:
        return None
    for name, scale in (("retry-after-ms", 0.001), ("retry-after", 1.0)):
        value = headers.get(name)
        if value:
            try:
                return max(0.0, float(value) * scale)
            except ValueError:
                continue
    return None


def _wire_error(body: object) -> tuple[str | None, str | None]:
    if isinstance(body, dict):
        inner = body.get("error", body)
        if isinstance(inner, dict):
            return inner.get("type"), inner.get("message")
    return None, None


def stream_error(body: object, request_id: str | None) -> ProviderError:
    """The error for an ``event: error`` that arrives after a stream has started."""
    etype, message = _wire_error(body)
    message = message or f"error event: {body}"
    if etype == "overloaded_error":
        return OverloadedError(message, status=200, error_type=etype, request_id=request_id)
    return StreamError(message, status=200, error_type=etype or "api_error",
                       request_id=request_id)


def map_error(exc: BaseException) -> ProviderError:
    """Translate an SDK or transport exception into laneway's tree."""
    if isinstance(exc, ProviderError):
        return exc
    if isinstance(exc, anthropic.APITimeoutError):
        return ProviderTimeoutError("the request timed out")
    if isinstance(exc, anthropic.APIConnectionError):
        return ConnectionLostError(f"connection failed: {exc.__cause__ or exc}")
    if isinstance(exc, TRANSPORT_TIMEOUTS):
        return ProviderTimeoutError(f"the request timed out: {exc or type(exc).__name__}")
    if isinstance(exc, TRANSPORT_ERRORS):
        return ConnectionLostError(f"connection dropped: {exc}")
    if isinstance(exc, anthropic.APIStatusError):
        err = _status_error(exc)
        err.ratelimit_headers = {k: v for k, v in exc.response.headers.items()
                                 if k.lower().startswith("anthropic-ratelimit-")}
        return err
    if isinstance(exc, TimeoutError):
        return ProviderTimeoutError("the request timed out")
    if isinstance(exc, anthropic.AnthropicError):
        return ServerError(str(exc))
    raise exc


def _status_error(exc: anthropic.APIStatusError) -> ProviderError:
    """The error for an answer with an error status (or an error event mid-stream)."""
    status = exc.status_code
    etype, message = _wire_error(exc.body)
    message = message or str(exc)
    rid = exc.request_id
    if status == 200:  # an error event after the stream had started
        return stream_error(exc.body, rid)
    kind = outcome(status, etype).kind  # the one table: laneway.wire.status
    if kind is Kind.RATE_LIMITED:
        return RateLimitedError(message, retry_after_s=retry_after_s(exc.response.headers),
                                request_id=rid)
    if kind is Kind.OVERLOADED:
        return OverloadedError(message, status=status, request_id=rid)
    if kind is Kind.UNREACHABLE:  # a proxy answered, not the API (no API error body)
        return ConnectionLostError(f"HTTP {status} from a gateway, not the API: {message}",
                                   status=status, request_id=rid)
    if status in (401, 403):
        return AuthenticationError(message, status=status, error_type=etype, request_id=rid)
    if status == 408:
        return ProviderTimeoutError(message, status=status, request_id=rid)
    if kind is Kind.FAILED:
        return ServerError(message, status=status, error_type=etype, request_id=rid)
    return RequestError(message, status=status, error_type=etype or "invalid_request_error",
                        request_id=rid)


#: How long connecting may take: an API that drops packets (no refusal) is found out in
#: seconds, not after a request's whole timeout (see runners.api_wait).
CONNECT_TIMEOUT_S = 10.0


def request_timeout(timeout_s: float) -> anthropic.Timeout:
    """A request's timeout: ``timeout_s`` in all, connecting within :data:`CONNECT_TIMEOUT_S`."""
    return anthropic.Timeout(timeout_s, connect=min(timeout_s, CONNECT_TIMEOUT_S))


@contextlib.contextmanager
def sdk_errors() -> Iterator[None]:
    """Around SDK calls: whatever they raise leaves as a :class:`ProviderError`.

    Cancellation, Ctrl-C and an async generator being closed pass through unchanged.
    """
    try:
        yield
    except (asyncio.CancelledError, KeyboardInterrupt, GeneratorExit):
        raise
    except BaseException as exc:
        raise map_error(exc) from exc


@dataclass(slots=True)
class Reply:
    """A complete answer: the Message as JSON, the response headers, and timings."""

    message: dict[str, Any]
    headers: dict[str, str]
    request_id: str | None = None
    ttft_s: float | None = None
    elapsed_s: float = 0.0
    #: A stream's silences (to the first content event, and the longest after it).
    gaps: Gaps | None = None

    @property
    def usage(self) -> dict[str, Any]:
        usage: dict[str, Any] = self.message.get("usage") or {}
        return usage

    @property
    def text(self) -> str:
        return "".join(b.get("text", "") for b in self.message.get("content", [])
                       if b.get("type") == "text")


OnText = Callable[[str], Awaitable[None] | None]


def _sdk_fields() -> frozenset[str]:
    import inspect

    sig = inspect.signature(anthropic.resources.messages.AsyncMessages.create)
    return frozenset(p for p in sig.parameters
                     if p not in ("self", "extra_headers", "extra_query", "extra_body", "timeout"))


#: Messages API fields the installed SDK takes as keyword arguments; the rest of a job's
#: params (``temperature`` in SDKs that dropped it, fields newer than the SDK) travel in
#: ``extra_body``, so any valid request can be sent whatever the SDK version.
SDK_FIELDS = _sdk_fields()


def sdk_kwargs(params: dict[str, Any]) -> dict[str, Any]:
    """Split Messages API params into the SDK's keyword arguments plus ``extra_body``."""
    kwargs = {k: v for k, v in params.items() if k in SDK_FIELDS}
    extra = {k: v for k, v in params.items() if k not in SDK_FIELDS}
    if extra:
        kwargs["extra_body"] = extra
    return kwargs


def _aiohttp_installed() -> bool:
    import importlib.util

    return importlib.util.find_spec("aiohttp") is not None


def sdk_client(*, api_key: str, base_url: str | None) -> anthropic.AsyncAnthropic:
    """The SDK's async client with its own retries off (laneway owns the policy).

    Where ``aiohttp`` is installed (the ``anthropic[aiohttp]`` extra, in laneway's
    dependencies) the SDK's aiohttp transport is used: httpx's connection pool checks
    every pooled connection on every request, which at concurrency 50 cost more CPU than
    all of laneway's own work per job. ``LANEWAY_HTTP=httpx`` keeps the SDK's default.
    """
    http_client = None
    if os.environ.get("LANEWAY_HTTP", "aiohttp") != "httpx" and _aiohttp_installed():
        http_client = anthropic.DefaultAioHttpClient()
    return anthropic.AsyncAnthropic(api_key=api_key, base_url=base_url, max_retries=0,
                                    http_client=http_client)


@dataclass
class Provider:
    """An ``AsyncAnthropic`` client and what laneway knows about the backend behind it."""

    client: anthropic.AsyncAnthropic
    kind: str  # "anthropic" or "local"
    base_url: str
    #: A description for the one line laneway prints about where requests go.
    description: str = ""
    _stop: Callable[[], None] | None = field(default=None, repr=False)
    #: Whether its answers cost nothing whatever model they name (by default: a local
    #: backend). The embedded local API on the echo engine is not: it simulates the API,
    #: answers as the model asked for, and is priced as that model (budgets can be seen
    #: working offline).
    free: bool | None = None
    #: The model that answers whatever is asked (the embedded engine's), when known
    #: before any answer; ``None``: the model asked for.
    answers_as: str | None = None

    def __post_init__(self) -> None:
        if self.free is None:
            self.free = self.kind == "local"

    @classmethod
    def at(cls, base_url: str, *, api_key: str = "local", kind: str = "anthropic") -> Provider:
        """A provider for any Anthropic-compatible server (tests, benchmarks, proxies)."""
        client = sdk_client(api_key=api_key, base_url=base_url)
        return cls(client, kind, base_url.rstrip("/"), description=f"the API at {base_url}")

    @property
    def is_local(self) -> bool:
        """True for the embedded local API (see :attr:`free` for its price)."""
        return self.kind == "local"

    @property
    def costs_nothing(self) -> bool:
        """Whether its answers are free (:attr:`free`, resolved)."""
        return bool(self.free)

    async def create(self, params: dict[str, Any], *, timeout_s: float = 600.0) -> Reply:
        """Send one non-streaming request; raise a :class:`ProviderError` on failure."""
        started = time.monotonic()
        with sdk_errors():
            raw = await self.client.messages.with_raw_response.create(
                **sdk_kwargs(params), timeout=request_timeout(timeout_s))
            body = await raw.read()
        try:
            message = json.loads(body)
        except ValueError as exc:
            raise ConnectionLostError("the response body was not valid JSON") from exc
        return Reply(message, dict(raw.headers), raw.request_id,
                     elapsed_s=time.monotonic() - started)

    async def stream(
        self, params: dict[str, Any], *, on_text: OnText | None = None,
        idle_timeout_s: float = 60.0, timeout_s: float = 600.0,
        idle_bound: IdleBound | None = None,
    ) -> Reply:
        """Stream one request, calling ``on_text`` with each text delta as it arrives.

        A stream that sends no content event for ``idle_timeout_s``, or the shorter
        ``idle_bound`` (pings do not count), raises :class:`StalledError`. Cancelling
        the caller closes the connection, which stops generation upstream.
        """
        started = time.monotonic()
        ttft: float | None = None
        message: dict[str, Any] = {}
        gaps = Gaps()
        with sdk_errors():
            raw = await self.client.messages.with_raw_response.create(
                **sdk_kwargs(params), stream=True, timeout=request_timeout(timeout_s))
            headers = dict(raw.headers)
            response = raw.http_response
            # The SDK's own SSE decoding, without a pydantic model per event: the events
            # are read as JSON, which costs a fraction (this path relays every token of
            # every person's stream in ``laneway serve``).
            events = anthropic.AsyncStream.raw_events(response)
            try:
                async for event, data in read_events(events, idle_timeout_s,
                                                     bound=idle_bound, gaps=gaps):
                    if event == "message_stop":
                        break
                    if event == "error":
                        raise stream_error(data, raw.request_id)
                    text = apply_event(message, event, data)
                    if text is not None:
                        if ttft is None:
                            ttft = time.monotonic() - started
                        if on_text is not None:
                            res = on_text(text)
                            if res is not None:
                                await res
            finally:
                await response.aclose()
        if message.get("stop_reason") is None:
            raise ConnectionLostError("the stream ended before message_stop")
        return Reply(message, headers, raw.request_id, ttft_s=ttft,
                     elapsed_s=time.monotonic() - started, gaps=gaps)

    async def aclose(self) -> None:
        await self.client.close()
        if self._stop is not None:
            self._stop()
            self._stop = None
