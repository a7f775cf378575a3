"""``laneway ask "..."``: one question, the answer streamed to the terminal as it is made."""

from __future__ import annotations

import asyncio
import sys
from typing import TYPE_CHECKING

import typer

from laneway.cli import bounds
from laneway.cli.app import app, console_err
from laneway.cost.answered import note, price_answer
from laneway.cost.prices import Usage, is_local
from laneway.jobs.formats import DEFAULT_MODEL

if TYPE_CHECKING:
    from laneway.provider.client import Reply


@app.command("ask", short_help="Stream one answer, then its speed and cost.")
def ask_command(
    prompt: str = typer.Argument(..., help="The question or instruction."),
    model: str = typer.Option(DEFAULT_MODEL, help="Model to ask."),
    max_tokens: int = typer.Option(512, min=1, help="Longest answer, in tokens."),
    system: str | None = typer.Option(None, help="System prompt."),
    temperature: float | None = typer.Option(None, callback=bounds.zero_to_one, help="0 for deterministic answers."),
    provider: str = typer.Option("auto", help="auto, anthropic or local."),
) -> None:
    """Stream one answer to the terminal, then time to first token, tokens/s and cost."""
    params: dict[str, object] = {"model": model, "max_tokens": max_tokens,
                                 "messages": [{"role": "user", "content": prompt}]}
    if system:
        params["system"] = system
    if temperature is not None:
        params["temperature"] = temperature
    reply, free = asyncio.run(_ask(params, provider))
    usage = Usage.from_api(reply.usage)
    priced = price_answer(model, reply.message, usage, free=free)
    if priced.cost_usd is None:
        cost = f"unknown (no price for {priced.answered})"
    elif priced.cost_usd == 0 and is_local(priced.answered):
        cost = "$0 (local)"
    else:
        cost = f"${priced.cost_usd:.6f}"
    gen_s = max(1e-9, reply.elapsed_s - (reply.ttft_s or 0.0))
    rate = (usage.output_tokens - 1) / gen_s if usage.output_tokens > 1 else 0.0
    ttft = f"{reply.ttft_s * 1000:.0f} ms" if reply.ttft_s is not None else "n/a"
    console_err.print(
        f"[dim]ttft {ttft} · {rate:.1f} tok/s · {usage.input_tokens} in / "
        f"{usage.output_tokens} out tokens · {cost} · stop: {reply.message.get('stop_reason')}"
        "[/dim]", highlight=False)
    both = note(model, priced.answered, priced.cost_usd, priced.asked_cost_usd)
    if both:
        console_err.print(f"[dim]{both}[/dim]", highlight=False)


async def _ask(params: dict[str, object], provider_name: str) -> tuple[Reply, bool]:
    from laneway.provider.backend import (
        open_provider,  # the SDK: only for the commands that call it
    )

    provider = await asyncio.to_thread(open_provider, provider_name)
    try:
        def write(text: str) -> None:
            sys.stdout.write(text)
            sys.stdout.flush()

        reply = await provider.stream(params, on_text=write)
        sys.stdout.write("\n")
        return reply, provider.costs_nothing
    finally:
        await provider.aclose()
