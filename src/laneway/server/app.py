"""The ``laneway serve`` app: chat over SSE, the runs API, the gateway, and the pages
(chat, the runs dashboard, the gateway's traffic).

One :class:`~laneway.agent.HybridAgent` (one provider client, one governor, one ledger)
serves every route, so a person's chat stream is admitted before background runs'
waiting requests. The pages are plain static files (no build step); model output is
rendered with DOM text nodes only, and the pages are served with a strict
Content-Security-Policy as a second line of defence.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import html
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any
from urllib.parse import quote

from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse, Response
from fastapi.staticfiles import StaticFiles
from starlette.types import ASGIApp, Receive, Scope, Send

from laneway import __version__
from laneway.agent import HybridAgent
from laneway.governor.buckets import RateLimits
from laneway.governor.quota import QuotaSharing, sharing_wanted
from laneway.jobs.formats import DEFAULT_MODEL
from laneway.provider.client import Provider
from laneway.server import chat_routes, run_view_routes, runs_routes, traffic_routes
from laneway.server.auth import TokenAuth, check_bind
from laneway.server.body_limit import BodyLimit
from laneway.server.errors import add_error_handlers
from laneway.server.events_hub import EventsHub
from laneway.server.gateway import Gateway, GatewaySettings
from laneway.server.gateway_routes import DirectMessages
from laneway.server.gateway_routes import router as gateway_router
from laneway.server.models import SSE_MARK
from laneway.server.origin import SameOrigin

STATIC_DIR = Path(str(resources.files("laneway.server") / "static"))

#: Pages load only their own scripts and styles, and talk only to this server.
CSP = ("default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
       "connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'")


#: The pages, by path: chat, the runs dashboard, one run's page (its script reads the
#: run's id from the address), the gateway's traffic.
PAGES = {"/": "index.html", "/runs": "runs.html", "/runs/{run_id}": "run.html",
         "/traffic": "traffic.html"}


class ServeApp(FastAPI):
    """The app, with routes answered before its middleware and router (:attr:`direct`,
    by method and path): the gateway's Messages (:class:`~.gateway_routes.DirectMessages`),
    whose every chunk would otherwise pass through each layer."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.direct: dict[tuple[str, str], ASGIApp] = {}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            direct = self.direct.get((scope["method"], scope["path"]))
            if direct is not None:
                scope["app"] = self
                await direct(scope, receive, send)
                return
        await super().__call__(scope, receive, send)


@dataclass(frozen=True, kw_only=True)
class ServerSettings:
    """Options of ``laneway serve``."""

    host: str = "127.0.0.1"
    port: int = 8000
    #: Required off loopback: every request must carry it.
    token: str | None = None
    provider: str = "auto"
    db: str | Path | None = None
    model: str = DEFAULT_MODEL
    system: str | None = None
    max_tokens: int = 1024
    limits: RateLimits | None = None
    concurrency: int | None = None
    #: How often the runs' event streams sample progress.
    events_interval_s: float = 0.5
    #: How often a running run writes a progress event to the ledger.
    progress_interval_s: float = 1.0
    #: How long a cancel waits for the run's canceled batches to end (and reads what
    #: they finished); the rest is read by the next cancel or ``laneway run``.
    cancel_wait_s: float = 10.0
    #: The gateway (the Anthropic API on this server): wait limits per lane.
    gateway: GatewaySettings = field(default_factory=GatewaySettings)
    #: Processes serving behind the port (``--workers``); each runs this app.
    workers: int = 1
    #: Share the account's limits with the other processes on the ledger (None: when
    #: ``workers`` > 1 or the ledger is PostgreSQL; see :mod:`laneway.governor.quota`).
    share_quota: bool | None = None


def create_app(settings: ServerSettings | None = None, *,
               provider: Provider | None = None, agent: HybridAgent | None = None) -> FastAPI:
    """The ASGI app. ``provider`` or ``agent``, when given, are used and not closed."""
    settings = settings or ServerSettings()
    check_bind(settings.host, settings.token)
    own_agent = agent is None
    the_agent = agent or HybridAgent(
        provider=provider or settings.provider, db=settings.db, model=settings.model,
        system=settings.system, max_tokens=settings.max_tokens, limits=settings.limits,
        concurrency=settings.concurrency, progress_interval_s=settings.progress_interval_s)

    gateway = Gateway(the_agent, dataclasses.replace(
        settings.gateway, token=settings.token,
        require_key=settings.gateway.require_key or settings.token is not None))

    sharing = QuotaSharing() if sharing_wanted(
        settings.db, workers=settings.workers, share=settings.share_quota) else None
    if sharing is not None:
        gateway.stats.process = sharing.process
        gateway.stats.processes = lambda: sharing.processes

    app = ServeApp(
        title="laneway serve", version=__version__,
        lifespan=_lifespan(the_agent, gateway, sharing, own_agent=own_agent),
        description="Chat over SSE and durable background runs, through one governor.",
    )
    app.state.agent = the_agent
    app.state.events_interval_s = settings.events_interval_s
    app.state.cancel_wait_s = settings.cancel_wait_s
    app.state.events_hub = EventsHub(the_agent, settings.events_interval_s)
    app.state.token = settings.token
    app.state.gateway = gateway
    app.direct[("POST", "/v1/messages")] = DirectMessages(settings.token)
    app.state.sharing = sharing
    app.state.metrics = traffic_routes.metrics_for(gateway)

    add_error_handlers(app)

    app.include_router(chat_routes.router)
    app.include_router(runs_routes.router)
    app.include_router(run_view_routes.router)
    app.include_router(gateway_router)
    app.include_router(traffic_routes.router)

    for path, name in PAGES.items():
        app.add_api_route(path, _page_route(name), methods=["GET"],
                          response_class=HTMLResponse, include_in_schema=False)

    @app.get("/healthz", include_in_schema=False)
    async def healthz() -> dict[str, Any]:
        # Answered without the token (load balancers): it says nothing of the upstream.
        return {"ok": True}

    _describe_event_streams(app)
    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")
    # The last added runs first: who may talk, then where from, then how much.
    app.add_middleware(BodyLimit)
    app.add_middleware(SameOrigin, token=settings.token)
    app.add_middleware(TokenAuth, token=settings.token)
    return app


def _lifespan(agent: HybridAgent, gateway: Gateway, sharing: QuotaSharing | None, *,
              own_agent: bool) -> Callable[[FastAPI], contextlib.AbstractAsyncContextManager[None]]:
    """The app's start (the agent, the quota shared with other processes, the gateway's
    batches and stats) and its stop."""

    @contextlib.asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        if own_agent:
            await agent.open()
        if sharing is not None:
            await sharing.start(agent.astore, agent.governor)
        sampler = asyncio.create_task(gateway.stats.sample_every(1.0))
        try:
            await gateway.start()
            yield
        finally:
            sampler.cancel()
            if sharing is not None:
                await sharing.stop()
            await gateway.aclose()
            if own_agent:
                await agent.aclose()

    return lifespan


def _page_route(name: str) -> Callable[[Request], Awaitable[Response]]:
    async def show(request: Request) -> Response:
        return page(name, request)

    return show


def _describe_event_streams(app: FastAPI) -> None:
    """Give the SSE routes' 200 answers the ``text/event-stream`` media type in the
    OpenAPI schema (FastAPI files a response model under ``application/json``). The
    routes say which they are with ``openapi_extra={SSE_MARK: True}``."""
    build = app.openapi

    def openapi() -> dict[str, Any]:
        schema = build()
        for operations in schema["paths"].values():
            for op in operations.values():
                if not op.get(SSE_MARK):
                    continue
                content = op["responses"]["200"].setdefault("content", {})
                if "application/json" in content:
                    content["text/event-stream"] = content.pop("application/json")
        return schema

    app.openapi = openapi  # type: ignore[method-assign]


def page(name: str, request: Request) -> Response:
    """A page, with ``?token=`` carried to the scripts and styles it loads."""
    token: str | None = request.app.state.token
    suffix = f"?token={quote(token, safe='')}" if token else ""
    text = (STATIC_DIR / name).read_text(encoding="utf-8")
    text = text.replace("{{asset_query}}", html.escape(suffix, quote=True))
    return HTMLResponse(text, headers={
        "content-security-policy": CSP, "referrer-policy": "no-referrer",
        "x-content-type-options": "nosniff", "cache-control": "no-store"})
