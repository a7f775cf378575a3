"""The local Anthropic-compatible API: a FastAPI app that speaks the wire format exactly.

Routes: ``POST /v1/messages`` (plain and SSE), ``POST /v1/messages/count_tokens``,
``GET /v1/models`` and the Message Batches calls. Every answer carries a ``request-id``
header; errors carry the API's error body; rate-limit headers come on every answer when
limits are set.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import AsyncIterator
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response, StreamingResponse
from sse_starlette import EventSourceResponse, ServerSentEvent
from starlette.requests import ClientDisconnect

from laneway.errors import ConfigError
from laneway.local import models, structured
from laneway.local.batches import BatchStore
from laneway.local.cache import CacheUsage, PromptCache
from laneway.local.completions import Completions
from laneway.local.config import LocalConfig
from laneway.local.engines import Engine, make_engine
from laneway.local.faults import Fault, FaultPlan
from laneway.local.generation import (
    Outcome,
    check_request,
    complete,
    delta_usage,
    generate,
    message_json,
)
from laneway.local.http import RequestIdMiddleware as RequestIdMiddleware
from laneway.local.http import add_error_handlers
from laneway.local.ratelimit import RateLimiter
from laneway.local.validation import MessageParams, validate_count_tokens, validate_message
from laneway.wire.batches import BATCH_MAX_BYTES, parse_batch_requests, results_base_url
from laneway.wire.errors import APIError
from laneway.wire.ids import check_version, new_id

MESSAGES_MAX_BYTES = 32 * 1024 * 1024


class DroppedConnection(Exception):
    """Raised inside a response to cut the connection (the ``drop`` fault)."""


class _QuietDrops(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        seen: set[int] = set()  # a chain can loop (a.__context__ = b, b.__context__ = a)
        while exc is not None and id(exc) not in seen:
            seen.add(id(exc))
            if isinstance(exc, DroppedConnection):
                return False
            exc = exc.__cause__ or exc.__context__
            if isinstance(exc, BaseExceptionGroup):
                exc = exc.exceptions[0] if exc.exceptions else None
        return True


logging.getLogger("uvicorn.error").addFilter(_QuietDrops())


def _sse(event: dict[str, Any]) -> ServerSentEvent:
    return ServerSentEvent(
        data=json.dumps(event, separators=(",", ":")), event=event["type"], sep="\n"
    )


class LocalAPI:
    """State shared by the routes: the engine, the limits, the faults, the batches."""

    def __init__(self, config: LocalConfig, engine: Engine | None = None) -> None:
        self.config = config
        self.engine = engine or make_engine(
            config.engine, ttft_ms=config.ttft_ms, token_ms=config.token_ms
        )
        self.limits = RateLimiter(rpm=config.rpm, itpm=config.itpm, otpm=config.otpm)
        public = config.public_url
        if public is not None and not public.startswith(("http://", "https://")):
            raise ConfigError(f"--public-url: {public!r} must start with http:// or https://")
        self.faults = FaultPlan.parse(
            config.faults, seed=config.seed, retry_after_s=config.fault_retry_after_s
        )
        self.cache = PromptCache(time_scale=config.cache_time_scale)
        self.batches = BatchStore(
            self.engine, cache=self.cache, time_scale=config.batch_time_scale,
            concurrency=config.batch_concurrency, min_s=config.batch_min_s, seed=config.seed,
        )
        #: Counters a test or benchmark can read: requests by outcome.
        self.stats: dict[str, int] = {"requests": 0, "ok": 0, "rate_limited": 0, "faults": 0}
        #: Completed answers per request content (what a client was billed for).
        self.completions = Completions()

    # -- request plumbing ------------------------------------------------------------------
    def check_auth(self, request: Request) -> None:
        """Check what every call carries: ``anthropic-version``, and the key when set."""
        check_version(request.headers.get("anthropic-version"))
        if self.config.api_key is None:
            return
        key = request.headers.get("x-api-key")
        if key is None:
            auth = request.headers.get("authorization", "")
            key = auth[7:] if auth.lower().startswith("bearer ") else None
        if key != self.config.api_key:
            raise APIError("authentication_error", "invalid x-api-key")

    @staticmethod
    async def read_json(request: Request, limit_bytes: int) -> Any:
        length = request.headers.get("content-length")
        if length is not None and length.isdigit() and int(length) > limit_bytes:
            raise APIError("request_too_large",
                           f"Request exceeds the maximum allowed number of bytes ({limit_bytes})")
        chunks: list[bytes] = []
        size = 0
        try:
            async for chunk in request.stream():
                size += len(chunk)
                if size > limit_bytes:
                    raise APIError(
                        "request_too_large",
                        f"Request exceeds the maximum allowed number of bytes ({limit_bytes})",
                    )
                chunks.append(chunk)
        except ClientDisconnect:  # nobody to answer; say nothing in the server's log
            raise DroppedConnection("the client went away before sending its body") from None
        try:
            return json.loads(b"".join(chunks))
        except (ValueError, RecursionError) as exc:  # RecursionError: nesting too deep
            raise APIError("invalid_request_error",
                           f"There was an error parsing the body: {exc}") from None

    def immediate_fault(self, fault: Fault | None) -> None:
        """Raise the faults that answer before any generation (529, 500, 429)."""
        if fault is None or fault.kind not in ("529", "500", "429"):
            return
        self.stats["faults"] += 1
        if fault.kind == "529":
            raise APIError("overloaded_error", "Overloaded")
        if fault.kind == "500":
            raise APIError("api_error", "Internal server error")
        raise APIError(
            "rate_limit_error", "This request would exceed your organization's rate limit.",
            headers={"retry-after": str(fault.retry_after_s), **self.limits.headers()},
        )

    # -- /v1/messages ----------------------------------------------------------------------
    async def messages(self, request: Request, request_id: str) -> Response:
        self.check_auth(request)
        body = await self.read_json(request, MESSAGES_MAX_BYTES)
        params = validate_message(body, capabilities=models.capabilities_of(self.engine))
        self.stats["requests"] += 1
        fault = self.faults.draw(request.headers.get("x-laneway-fault"))
        self.immediate_fault(fault)
        total_tokens = self.engine.count_tokens(params.prompt)
        check_request(self.engine, params, total_tokens)
        plan = self.cache.plan(params.model, params.breakpoints, total_tokens,
                               self.engine.count_tokens)
        cached = plan.usage
        input_tokens = cached.input_tokens
        try:
            self.limits.admit(cached.rate_limited_tokens)  # cache reads do not count
        except APIError:
            self.stats["rate_limited"] += 1
            raise
        self.cache.commit(plan)
        headers = {"request-id": request_id, **self.limits.headers()}
        kind = fault.kind if fault else None
        if kind is not None:
            self.stats["faults"] += 1
        if params.stream:
            events = self.stream_events(params, input_tokens, kind, cache=cached)
            return EventSourceResponse(events, headers=headers, ping=3600, sep="\n")
        if kind == "midstream":
            raise APIError("overloaded_error", "Overloaded")
        if kind == "stall":
            await asyncio.sleep(self.config.stall_s)
            raise APIError("api_error", "the request stalled")
        message, outcome = await complete(
            self.engine, params, msg_id=new_id("msg"), input_tokens=input_tokens,
            seed=self.config.seed, cache=cached,
        )
        self.limits.record_output(outcome.output_tokens)
        headers.update(self.limits.headers())
        if kind == "drop":
            self.completions.record(params.prompt.last_user_text, dropped=True)
            return self.dropped(message, headers)
        self.stats["ok"] += 1
        self.completions.record(params.prompt.last_user_text)
        return JSONResponse(message, headers=headers)

    @staticmethod
    def dropped(message: dict[str, Any], headers: dict[str, str]) -> Response:
        raw = json.dumps(message).encode()

        async def cut() -> AsyncIterator[bytes]:
            yield raw[: len(raw) // 2]
            raise DroppedConnection("fault: dropped connection")

        return StreamingResponse(cut(), media_type="application/json", headers=headers)

    async def stream_events(
        self, params: MessageParams, input_tokens: int, fault: str | None, *,
        cache: CacheUsage | None = None,
    ) -> AsyncIterator[ServerSentEvent]:
        msg_id = new_id("msg")
        yield _sse({"type": "message_start",
                    "message": message_json(msg_id=msg_id, model=params.model, outcome=None,
                                            input_tokens=input_tokens, cache=cache)})
        if fault == "stall":
            waited = 0.0
            while waited < self.config.stall_s:
                await asyncio.sleep(1.0)
                waited += 1.0
                yield _sse({"type": "ping"})
            raise DroppedConnection("fault: stalled stream ended")
        yield _sse({"type": "content_block_start", "index": 0,
                    "content_block": structured.block_start(params.output)})
        yield _sse({"type": "ping"})
        outcome = Outcome()
        deltas = 0
        try:
            async for text in generate(self.engine, params, outcome, seed=self.config.seed):
                yield _sse({"type": "content_block_delta", "index": 0,
                            "delta": structured.delta(params.output, text)})
                deltas += 1
                if fault == "midstream" and deltas >= 2:
                    break
                if fault == "drop" and deltas >= 2:
                    raise DroppedConnection("fault: dropped connection")
        finally:
            self.limits.record_output(outcome.output_tokens)
        if fault == "midstream":
            yield _sse({"type": "error",
                        "error": {"type": "overloaded_error", "message": "Overloaded"}})
            return
        if fault == "drop":  # the answer was shorter than two deltas: cut it anyway
            self.completions.record(params.prompt.last_user_text, dropped=True)
            raise DroppedConnection("fault: dropped connection")
        if deltas == 0:  # a block gets at least one delta, even when its text is empty
            yield _sse({"type": "content_block_delta", "index": 0,
                        "delta": structured.delta(params.output, "")})
        # Counted before the last events: a client that has its answer hangs up at once.
        self.completions.record(params.prompt.last_user_text)
        yield _sse({"type": "content_block_stop", "index": 0})
        yield _sse({"type": "message_delta",
                    "delta": {"stop_reason": outcome.stop_reason,
                              "stop_sequence": outcome.stop_sequence},
                    "usage": delta_usage(input_tokens, outcome.output_tokens, cache=cache)})
        yield _sse({"type": "message_stop"})
        self.stats["ok"] += 1

    async def count_tokens(self, request: Request) -> dict[str, int]:
        self.check_auth(request)
        body = await self.read_json(request, MESSAGES_MAX_BYTES)
        _model, prompt = validate_count_tokens(body)
        return {"input_tokens": self.engine.count_tokens(prompt)}


def create_app(config: LocalConfig | None = None, *, engine: Engine | None = None) -> FastAPI:
    """The local API as an ASGI app (``app.state.local`` holds its :class:`LocalAPI`)."""
    api = LocalAPI(config or LocalConfig(), engine)

    @contextlib.asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        yield
        await api.batches.aclose()
        await api.engine.aclose()

    app = FastAPI(title="laneway local Anthropic-compatible API", docs_url=None,
                  redoc_url=None, openapi_url=None, lifespan=lifespan)
    app.state.local = api

    add_error_handlers(app, api.limits)
    app.add_middleware(RequestIdMiddleware, limits=api.limits)

    _add_message_routes(app, api)
    _add_batch_routes(app, api)
    return app


def _add_message_routes(app: FastAPI, api: LocalAPI) -> None:
    """``/v1/messages``, ``count_tokens``, ``/v1/models`` and laneway's completion counts."""

    @app.post("/v1/messages")
    async def messages(request: Request) -> Response:
        return await api.messages(request, request.state.request_id)

    @app.post("/v1/messages/count_tokens")
    async def count_tokens(request: Request) -> dict[str, int]:
        return await api.count_tokens(request)

    @app.get("/v1/models")
    async def list_models(
        request: Request, limit: int = 20, after_id: str | None = None,
        before_id: str | None = None,
    ) -> dict[str, Any]:
        api.check_auth(request)
        q = request.query_params  # the SDK sends a list as ``lifecycle[]=...``
        stages = q.getlist("lifecycle[]") + q.getlist("lifecycle")
        return models.page(api.engine, limit=limit, after_id=after_id, before_id=before_id,
                           lifecycle=stages)

    @app.get("/v1/models/{model_id}")
    async def get_model(request: Request, model_id: str) -> dict[str, Any]:
        api.check_auth(request)
        return models.retrieve(api.engine, model_id)

    @app.get("/v1/laneway/completions")
    async def completions() -> dict[str, Any]:
        # Counts only (no request content), readable without the key: a test reads
        # what a refused client was billed for with no key of its own.
        return api.completions.as_json()


def _add_batch_routes(app: FastAPI, api: LocalAPI) -> None:
    """The Message Batches calls under ``/v1/messages/batches``."""

    @app.post("/v1/messages/batches")
    async def create_batch(request: Request) -> dict[str, Any]:
        api.check_auth(request)
        body = await api.read_json(request, BATCH_MAX_BYTES)
        batch = api.batches.create(parse_batch_requests(body))
        return api.batches.as_json(batch, _base(request))

    @app.get("/v1/messages/batches")
    async def list_batches(
        request: Request, limit: int = 20, after_id: str | None = None,
        before_id: str | None = None,
    ) -> dict[str, Any]:
        api.check_auth(request)
        if not 1 <= limit <= 1000:
            raise APIError("invalid_request_error", "limit: must be between 1 and 1000")
        page, has_more = api.batches.listing(limit=limit, after_id=after_id, before_id=before_id)
        data = [api.batches.as_json(b, _base(request)) for b in page]
        return {
            "data": data, "has_more": has_more,
            "first_id": data[0]["id"] if data else None,
            "last_id": data[-1]["id"] if data else None,
        }

    @app.get("/v1/messages/batches/{batch_id}")
    async def get_batch(request: Request, batch_id: str) -> dict[str, Any]:
        api.check_auth(request)
        return api.batches.as_json(api.batches.get(batch_id), _base(request))

    @app.post("/v1/messages/batches/{batch_id}/cancel")
    async def cancel_batch(request: Request, batch_id: str) -> dict[str, Any]:
        api.check_auth(request)
        return api.batches.as_json(api.batches.cancel(batch_id), _base(request))

    @app.delete("/v1/messages/batches/{batch_id}")
    async def delete_batch(request: Request, batch_id: str) -> dict[str, str]:
        api.check_auth(request)
        api.batches.delete(batch_id)
        return {"id": batch_id, "type": "message_batch_deleted"}

    @app.get("/v1/messages/batches/{batch_id}/results")
    async def batch_results(request: Request, batch_id: str) -> Response:
        api.check_auth(request)
        return Response(api.batches.results_jsonl(batch_id), media_type="application/binary")


def _base(request: Request) -> str:
    """Base of ``results_url``: the configured public URL, else the listen address."""
    public: str | None = request.app.state.local.config.public_url
    return results_base_url(request, public)
