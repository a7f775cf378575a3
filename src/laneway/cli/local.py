"""``laneway local``: run the local Anthropic-compatible API in the foreground."""

from __future__ import annotations

import typer

from laneway.cli import bounds
from laneway.cli.app import console_err
from laneway.local.config import LocalConfig


def register(app: typer.Typer) -> None:
    app.command("local", short_help="Serve the local Anthropic-compatible API.")(local)


def local(
    port: int = typer.Option(8787, min=1, max=65535, help="Port to listen on."),
    host: str = typer.Option("127.0.0.1", help="Address to bind (loopback by default)."),
    engine: str = typer.Option(
        "", help="echo (deterministic, for tests) or smollm2 (a real model; the default "
        "when the 'local' extra is installed). smollm2 samples at temperature 0.2 and "
        "top_p 0.9, its model card's recommendation, when a request sets none of "
        "temperature / top_p / top_k; a request that sets any of them gets exactly what "
        "it asked for. Its context holds 2,048 tokens per request (prompt and answer): a "
        "longer prompt is a 400, an answer that fills it stops with "
        "model_context_window_exceeded. Structured outputs and forced tool calls follow "
        "the JSON schema (a grammar on smollm2, a minimal instance on echo). "
        "GET /v1/models describes the engine."),
    ttft_ms: float = typer.Option(0.0, callback=bounds.at_least_zero, help="echo: milliseconds before the first token."),
    token_ms: float = typer.Option(0.0, callback=bounds.at_least_zero, help="echo: milliseconds between tokens."),
    rpm: int | None = typer.Option(None, min=1, help="Simulated requests-per-minute limit."),
    itpm: int | None = typer.Option(None, min=1, help="Simulated input-tokens-per-minute limit."),
    otpm: int | None = typer.Option(None, min=1, help="Simulated output-tokens-per-minute limit."),
    faults: str = typer.Option(
        "", help="Fault rates, e.g. 529=0.05,500=0.02,429=0.01,drop=0.01,midstream=0.02,"
        "stall=0.01,pause=0.01,thread_not_found=0.01,thread_unsupported=0.01"),
    fault_retry_after_s: int = typer.Option(5, min=0, help="retry-after sent with a 429 fault."),
    seed: int = typer.Option(0, help="Seed for faults and sampling."),
    api_key: str | None = typer.Option(
        None, help="Require this key (x-api-key or Authorization: Bearer)."),
    batch_time_scale: float = typer.Option(
        1.0, callback=bounds.above_zero, help="Scale of batch time: 0.0001 makes the 24 h expiry 8.6 s."),
    batch_concurrency: int = typer.Option(4, min=1, help="Batch requests processed at once."),
    batch_min_s: float = typer.Option(0.0, callback=bounds.at_least_zero, help="Keep each batch in progress at least this long."),
    batches: bool = typer.Option(True, "--batches/--no-batches", help="--no-batches: answer 404 on /v1/messages/batches, as an upstream without Message Batches does."),
    cache_time_scale: float = typer.Option(
        1.0, callback=bounds.above_zero,
        help="Scale of prompt-cache lifetimes: 0.001 makes 5 min 0.3 s."),
    public_url: str | None = typer.Option(
        None, help="Base URL clients reach the server at, e.g. a proxy's (batch results_url "
        "is built on it; default: the address it listens on)."),
) -> None:
    """Serve the local Anthropic-compatible API (the embedded backend and test bed)."""
    import uvicorn

    from laneway.heap import freeze_startup_objects
    from laneway.local.app import create_app
    from laneway.local.engines import smollm2_available

    if not engine:
        engine = "smollm2" if smollm2_available() else "echo"
    config = LocalConfig(
        engine=engine, ttft_ms=ttft_ms, token_ms=token_ms, rpm=rpm, itpm=itpm, otpm=otpm,
        faults=faults, fault_retry_after_s=fault_retry_after_s, seed=seed, api_key=api_key,
        batch_time_scale=batch_time_scale, batch_concurrency=batch_concurrency,
        batch_min_s=batch_min_s, batches=batches, cache_time_scale=cache_time_scale,
        public_url=public_url)
    app = create_app(config)
    console_err.print(f"laneway local API ({engine} engine) on http://{host}:{port} — "
                      f"point the SDK at it with ANTHROPIC_BASE_URL=http://{host}:{port}")
    freeze_startup_objects()
    # Idle connections outlive the clients' (5-15 s): none is reused as it closes.
    uvicorn.run(app, host=host, port=port, log_level="warning", access_log=False,
                timeout_keep_alive=75)
