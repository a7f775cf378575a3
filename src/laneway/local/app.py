"""The local Anthropic-compatible API: a FastAPI app that speaks the wire format exactly.

Routes: ``POST /v1/messages`` (plain and SSE), ``POST /v1/messages/count_tokens``,
``GET /v1/models`` and the Message Batches calls. Every answer carries a ``request-id``
header; errors carry the API's error body; rate-limit headers come on every answer when
limits are set.
"""

from __future__ import annotations

import contextlib
import json
import logging
from collections.abc import AsyncIterator
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import Response
from starlette.requests import ClientDisconnect

from laneway.errors import ConfigError
from laneway.local import models
from laneway.local.batches import BatchStore
from laneway.local.cache import PromptCache
from laneway.local.completions import Completions
from laneway.local.config import LocalConfig
from laneway.local.engines import Engine, make_engine
from laneway.local.faults import FaultPlan
from laneway.local.http import RequestIdMiddleware, add_error_handlers
from laneway.local.messages import DroppedConnection, MessageAnswers
from laneway.local.ratelimit import RateLimiter
from laneway.local.threads import ThreadStore
from laneway.local.validation import validate_count_tokens
from laneway.wire.batches import BATCH_MAX_BYTES, parse_batch_requests, results_base_url
from laneway.wire.body import read_body
from laneway.wire.errors import (
    MESSAGES_MAX_BYTES,
    APIError,
    check_version,
    unparsable,
)


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


class LocalAPI:
    """State shared by the routes: the engine, the limits, the faults, the batches, the
    threads."""

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
        self.stats: dict[str, int] = {"requests": 0, "ok": 0, "rate_limited": 0, "faults": 0,
                                      "thread_creates": 0, "thread_continues": 0}
        #: Completed answers per request content (what a client was billed for).
        self.completions = Completions()
        #: Message threads, held in this process only (gone after a restart).
        self.threads = ThreadStore(max_count=config.thread_max_count,
                                   max_bytes=config.thread_max_bytes)
        self.answers = MessageAnswers(self)

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
        try:
            raw = await read_body(request, limit_bytes)
        except ClientDisconnect:  # nobody to answer; say nothing in the server's log
            raise DroppedConnection("the client went away before sending its body") from None
        try:
            return json.loads(raw)
        except (ValueError, RecursionError) as exc:  # RecursionError: nesting too deep
            raise unparsable(exc) from None

    # -- /v1/messages ----------------------------------------------------------------------
    async def messages(self, request: Request, request_id: str) -> Response:
        self.check_auth(request)
        body = await self.read_json(request, MESSAGES_MAX_BYTES)
        return await self.answers.answer(
            body, fault_header=request.headers.get("x-laneway-fault"), request_id=request_id)

    async def count_tokens(self, request: Request) -> dict[str, int]:
        self.check_auth(request)
        body = await self.read_json(request, MESSAGES_MAX_BYTES)
        _model, prompt = validate_count_tokens(body)
        forced = request.headers.get("x-laneway-fault")
        if forced:  # on request only: count_tokens draws nothing from the --faults plan
            self.answers.immediate_fault(self.faults.draw(forced))
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
    if api.config.batches:
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
