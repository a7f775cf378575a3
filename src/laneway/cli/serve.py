"""``laneway serve``: the web app (chat page, runs dashboard) and its HTTP API."""

from __future__ import annotations

import asyncio

import typer

from laneway.cli.app import app, console_err
from laneway.errors import ConfigError
from laneway.governor import RateLimits
from laneway.jobs import DEFAULT_MODEL


@app.command("serve")
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
) -> None:
    """Serve the chat page (/), the runs dashboard (/runs) and the API (/docs).

    Chat streams over SSE and background runs share one provider client and one rate
    governor, so a person's answer is always served before queued background work.
    """
    from laneway.server.auth import check_bind

    try:
        check_bind(host, token)  # before anything starts
    except ConfigError as exc:
        # One line however narrow the terminal (Rich would wrap it at 80 columns).
        console_err.print(f"[red]laneway: error:[/red] {exc}", soft_wrap=True, highlight=False)
        # SystemExit, not typer.Exit: main() drops the code of a typer.Exit (see report).
        raise SystemExit(2) from None
    import uvicorn

    from laneway.backend import open_provider
    from laneway.heap import freeze_startup_objects
    from laneway.server import ServerSettings, create_app

    limits = RateLimits(rpm=rpm, itpm=itpm, otpm=otpm) if (rpm or itpm or otpm) else None
    settings = ServerSettings(host=host, port=port, token=token, provider=provider, db=db,
                              model=model, system=system, max_tokens=max_tokens,
                              limits=limits, concurrency=concurrency)
    backend = open_provider(provider)  # says where requests go; fails early without a key
    web_app = create_app(settings, provider=backend)
    shown = f"[{host}]" if ":" in host else host
    console_err.print(f"laneway serve on http://{shown}:{port}  (chat: /  runs: /runs  "
                      f"API: /docs){'  token required' if token else ''}", highlight=False)
    server = uvicorn.Server(uvicorn.Config(web_app, host=host, port=port, log_level="warning",
                                           access_log=False, lifespan="on",
                                           timeout_graceful_shutdown=5,
                                           # No X-Forwarded-* use: skip parsing them.
                                           proxy_headers=False))
    freeze_startup_objects()
    try:
        asyncio.run(server.serve())
    finally:
        asyncio.run(backend.aclose())
