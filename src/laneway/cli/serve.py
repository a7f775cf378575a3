"""``laneway serve``: the web app (chat page, runs dashboard) and its HTTP API."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any, NoReturn

import typer

from laneway.cli.app import app, console_err
from laneway.errors import ConfigError, StoreError
from laneway.governor.buckets import RateLimits
from laneway.jobs.formats import DEFAULT_MODEL

if TYPE_CHECKING:
    from laneway.server import ServerSettings


_PUBLIC_URL = typer.Option(
    None, help="Gateway: the base URL clients reach this server at (e.g. a proxy's), for "
               "the results_url of Message Batches (default: the address a connection "
               "arrives at).")
_WORKERS = typer.Option(
    1, min=1, max=256, help="Processes serving behind the port, sharing the ledger and the "
                            "account's rate limits (one per core is plenty).")
_NO_ANONYMOUS = typer.Option(
    False, "--no-anonymous",
    help="Gateway: refuse requests without a laneway key once any key exists (on loopback "
         "without --token they are otherwise the anonymous local client, with no budget "
         "and no rate).")
_SHARE_QUOTA = typer.Option(
    None, "--share-quota/--no-share-quota",
    help="Share the account's rate limits with the other laneway serve processes on this "
         "ledger (default: with --workers, or a PostgreSQL ledger).")


@app.command("serve", short_help="Serve the web app, its API and the gateway.")
def serve_command(
    host: str = typer.Option("127.0.0.1", help="Address to listen on. Anything but loopback needs --token."),
    port: int = typer.Option(8000, min=1, max=65535, help="Port to listen on."),
    token: str | None = typer.Option(None, envvar="LANEWAY_SERVE_TOKEN",
                                     help="Require this bearer token on every request "
                                          "(header, or ?token= in page URLs)."),
    provider: str = typer.Option("auto", help="auto, anthropic (needs ANTHROPIC_API_KEY) or local (embedded model)."),
    model: str = typer.Option(DEFAULT_MODEL, help="Default model for chat and runs."),
    system: str | None = typer.Option(None, help="Default system prompt."),
    max_tokens: int = typer.Option(1024, min=1, help="Default max_tokens."),
    db: str | None = typer.Option(None, help="Ledger: a path, sqlite:///PATH or postgresql://... [default: .laneway/laneway.db]"),
    concurrency: int | None = typer.Option(None, min=1, help="Fixed background requests in flight (default: adaptive)."),
    rpm: int | None = typer.Option(None, min=1, help="Requests-per-minute limit, if known (else learnt)."),
    itpm: int | None = typer.Option(None, min=1, help="Input-tokens-per-minute limit, if known."),
    otpm: int | None = typer.Option(None, min=1, help="Output-tokens-per-minute limit, if known."),
    wait_interactive: float = typer.Option(
        60.0, min=0.0, help="Gateway: how long a streamed (interactive) request may wait for "
                            "the quota before it is answered 429, in seconds."),
    wait_background: float = typer.Option(
        300.0, min=0.0, help="Gateway: the same for other (background) requests; keep it "
                             "under your clients' timeout (the SDKs' default is 600 s)."),
    public_url: str | None = _PUBLIC_URL,
    workers: int = _WORKERS,
    share_quota: bool | None = _SHARE_QUOTA,
    no_anonymous: bool = _NO_ANONYMOUS,
) -> None:
    """Serve the chat page (/), the runs dashboard (/runs), the API (/docs) and the
    Anthropic API itself (the gateway).

    Chat streams over SSE and background runs share one provider client and one rate
    governor, so a person's answer is always served before queued background work.

    The gateway: point any app that uses the Anthropic API at this server
    (export ANTHROPIC_BASE_URL=http://127.0.0.1:8000) and change nothing else. Streamed
    requests take the interactive lane, the rest the background lane (header
    'laneway-lane' to choose); when the quota is spent a request waits instead of getting
    a 429, and 429s, 529s and 5xx from upstream are retried for it. The upstream is the
    real API with ANTHROPIC_API_KEY, the server at ANTHROPIC_BASE_URL, or else the
    embedded local model. Several processes (--workers N, or hosts on one PostgreSQL
    ledger) share the account's limits through the ledger.
    """
    from laneway.server.auth import check_bind

    try:
        check_bind(host, token)  # before anything starts
        if public_url is not None and not public_url.startswith(("http://", "https://")):
            raise ConfigError(f"--public-url {public_url!r}: must start with http:// or "
                              "https://")
    except ConfigError as exc:
        _fail(exc)
    from laneway.server.gateway import GatewaySettings
    from laneway.server.gateway.admission import WaitLimits

    limits = RateLimits(rpm=rpm, itpm=itpm, otpm=otpm) if (rpm or itpm or otpm) else None
    gateway = GatewaySettings(waits=WaitLimits(wait_interactive, wait_background),
                              public_url=public_url, anonymous=not no_anonymous)
    _serve(host, port, token=token, provider=provider, db=db, model=model, system=system,
           max_tokens=max_tokens, limits=limits, concurrency=concurrency, gateway=gateway,
           workers=workers, share_quota=share_quota)


def _fail(exc: ConfigError | StoreError) -> NoReturn:
    # One line however narrow the terminal (Rich would wrap it at 80 columns).
    console_err.print(f"[red]laneway: error:[/red] {exc}", soft_wrap=True, highlight=False)
    # SystemExit, not typer.Exit: main() drops the code of a typer.Exit (see report).
    raise SystemExit(2) from None


def _serve(host: str, port: int, *, provider: str, token: str | None, **settings: Any) -> None:
    """Start the server with ``settings`` (:class:`~laneway.server.ServerSettings`)."""
    import uvicorn

    from laneway.heap import freeze_startup_objects
    from laneway.provider.backend import open_provider
    from laneway.server import ServerSettings, create_app
    from laneway.server.gateway.loop import check_upstream

    try:
        check_upstream(host, port)
    except ConfigError as exc:
        _fail(exc)
    backend = open_provider(provider)  # says where requests go; fails early without a key
    config = ServerSettings(host=host, port=port, token=token, provider=provider, **settings)
    shown = f"[{host}]" if ":" in host else host
    workers = f"  {config.workers} workers" if config.workers > 1 else ""
    console_err.print(f"laneway serve on http://{shown}:{port}  (chat: /  runs: /runs  "
                      f"API: /docs){'  token required' if token else ''}{workers}",
                      highlight=False, soft_wrap=True)
    console_err.print(f"gateway: export ANTHROPIC_BASE_URL=http://{shown}:{port}  "
                      f"(upstream: {backend.description}; {_who(config)})",
                      highlight=False, soft_wrap=True)
    if config.workers > 1:
        asyncio.run(backend.aclose())
        _serve_workers(config)
        return
    web_app = create_app(config, provider=backend)
    server = uvicorn.Server(uvicorn.Config(web_app, **_uvicorn_options(host, port)))
    freeze_startup_objects()
    try:
        _run(server.serve())
    finally:
        asyncio.run(backend.aclose())


def _who(config: ServerSettings) -> str:
    """Who may use the gateway, for the start-up line."""
    if config.token is not None:
        return "every request needs a laneway key or the token"
    if not config.gateway.anonymous:
        return ("requests without a laneway key are refused once a key exists "
                "(--no-anonymous)")
    return ("requests without a laneway key are the anonymous local client: no budget, "
            "no rate (--no-anonymous refuses them)")


def _uvicorn_options(host: str, port: int) -> dict[str, Any]:
    from laneway.server.connections import HTTP_PROTOCOL

    return {"host": host, "port": port, "log_level": "warning", "access_log": False,
            "lifespan": "on", "timeout_graceful_shutdown": 5,
            # Longer than clients keep an idle connection (httpx: 5 s, uvicorn's default
            # too), so a client never reuses one the server is closing.
            "timeout_keep_alive": 75,
            # No X-Forwarded-* use: skip parsing them.
            "proxy_headers": False,
            # Heads bounded in size and time (431, 408): see laneway.server.connections.
            "http": HTTP_PROTOCOL}


def _serve_workers(settings: ServerSettings) -> None:
    """uvicorn's own workers (on uvloop where it is installed), each making its app from
    the settings (see :mod:`laneway.server.factory`). The ledger is opened (and migrated)
    here first, so one that cannot be opened is one line, not a worker's traceback."""
    import os

    from uvicorn import Config
    from uvicorn.config import STARTUP_FAILURE
    from uvicorn.supervisors import Multiprocess

    from laneway.server import factory
    from laneway.store import StoreSettings, open_store

    try:
        open_store(StoreSettings.from_dsn(settings.db)).close()
    except (ConfigError, StoreError) as exc:
        _fail(exc)
    os.environ[factory.ENV] = factory.dump(settings)
    config = Config(factory.FACTORY, factory=True, workers=settings.workers,
                    **_uvicorn_options(settings.host, settings.port))
    supervisor = Multiprocess(config, sockets=[config.bind_socket()])
    supervisor.run()
    if any(p.exitcode == STARTUP_FAILURE for p in supervisor.processes):
        console_err.print("[red]laneway: error:[/red] a worker process failed to start "
                          "(see above)", soft_wrap=True, highlight=False)
        raise SystemExit(1)


def _run(main: Any) -> None:
    """Run the server on uvloop where it is installed (less CPU per relayed event)."""
    try:
        import uvloop
    except ImportError:
        asyncio.run(main)
        return
    uvloop.run(main)
