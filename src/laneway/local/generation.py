"""Run an engine for one request: max_tokens, stop sequences, and the API's JSON shapes.

:func:`generate` turns the engine's tokens into text deltas that are safe to send: text
that might be the start of a stop sequence is held back until it is known not to be, so
a stop sequence never reaches the client, even split across tokens.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

from laneway.local import structured
from laneway.local.cache import CacheUsage
from laneway.local.engines.base import ContextWindowFull, Engine, SamplingParams
from laneway.local.validation import MessageParams
from laneway.wire.errors import APIError


@dataclass(slots=True)
class Outcome:
    """How a generation ended."""

    text: str = ""
    stop_reason: str = "end_turn"
    stop_sequence: str | None = None
    output_tokens: int = 0
    output: structured.OutputSpec | None = None


def _held_back(text: str, stops: tuple[str, ...]) -> int:
    """Length of the longest suffix of ``text`` that begins some stop sequence."""
    longest = max((len(s) for s in stops), default=0)
    for k in range(min(len(text), longest - 1), 0, -1):
        tail = text[-k:]
        if any(s.startswith(tail) for s in stops):
            return k
    return 0


def check_request(engine: Engine, params: MessageParams, input_tokens: int) -> None:
    """The 400s a request gets before generation: a prompt that leaves no room in the
    engine's context (prompt and answer share it), a JSON schema the engine cannot
    follow."""
    window = getattr(engine, "context_window", None)
    if isinstance(window, int) and input_tokens >= window:  # leave room for one token
        raise APIError("invalid_request_error",
                       f"prompt is too long: {input_tokens} tokens > {window - 1} maximum")
    structured.check(engine, params.output)


def sampling_of(engine: Engine, params: MessageParams, *, seed: int = 0) -> SamplingParams:
    """How the engine samples for ``params``: what the request set, or else (when it set
    none of temperature / top_p / top_k) the engine's own defaults."""
    fields: dict[str, Any] = {
        "temperature": params.temperature, "top_p": params.top_p, "top_k": params.top_k}
    if not params.sampling_set:
        fields.update(getattr(engine, "sampling_defaults", None) or {})
    return SamplingParams(
        max_tokens=params.max_tokens, seed=seed,
        json_schema=params.output.schema if params.output is not None else None, **fields,
    )


async def generate(
    engine: Engine, params: MessageParams, outcome: Outcome, *, seed: int = 0,
    pause_after_tokens: int | None = None,
) -> AsyncIterator[str]:
    """Yield text deltas for ``params``; ``outcome`` is filled in as generation ends.

    ``max_tokens: 0`` generates nothing (the request only fills the prompt cache);
    ``pause_after_tokens`` ends the turn there with ``stop_reason: "pause_turn"``, as a
    server-tool loop pauses one (the ``pause`` fault): the client resumes it.
    """
    outcome.output = params.output
    if params.max_tokens == 0:
        outcome.stop_reason = "max_tokens"
        return
    cap, cap_reason = params.max_tokens, "max_tokens"
    if pause_after_tokens is not None and pause_after_tokens < cap:
        cap, cap_reason = pause_after_tokens, "pause_turn"
    sampling = sampling_of(engine, params, seed=seed)
    stops = params.stop_sequences
    text = ""
    sent = 0
    tokens = engine.generate(params.prompt, sampling)
    try:
        async for token in tokens:
            if isinstance(token, ContextWindowFull):
                outcome.stop_reason = "model_context_window_exceeded"
                break
            outcome.output_tokens += 1
            text += token
            if stops:
                start = max(0, sent - max(len(s) for s in stops))
                hits = [(i, s) for s in stops if (i := text.find(s, start)) >= 0]
                if hits:
                    at, stop = min(hits)
                    if at > sent:
                        yield text[sent:at]
                    text = text[:at]
                    sent = at
                    outcome.stop_reason, outcome.stop_sequence = "stop_sequence", stop
                    break
                safe = len(text) - _held_back(text, stops)
            else:
                safe = len(text)
            if safe > sent:
                yield text[sent:safe]
                sent = safe
            if outcome.output_tokens >= cap:
                outcome.stop_reason = cap_reason
                break
        if outcome.stop_reason != "stop_sequence" and len(text) > sent:
            yield text[sent:]
            sent = len(text)
    finally:
        with contextlib.suppress(Exception):
            await tokens.aclose()  # type: ignore[attr-defined]
        outcome.text = text[:sent]
        outcome.output_tokens = max(1, outcome.output_tokens)
        if outcome.stop_reason == "end_turn" and params.output and params.output.tool:
            outcome.stop_reason = "tool_use"


def usage(
    input_tokens: int, output_tokens: int, *, service_tier: str = "standard",
    cache: CacheUsage | None = None,
) -> dict[str, Any]:
    """A Message's full ``usage`` (the SDK's ``Usage``); ``input_tokens`` are the plain
    ones, ``cache`` the prompt cache's reads and writes."""
    cache = cache or CacheUsage(input_tokens)
    return {
        "input_tokens": input_tokens,
        "output_tokens": output_tokens,
        "cache_creation_input_tokens": cache.written,
        "cache_read_input_tokens": cache.read,
        "cache_creation": {"ephemeral_5m_input_tokens": cache.write_5m,
                           "ephemeral_1h_input_tokens": cache.write_1h},
        "service_tier": service_tier,
    }


def delta_usage(
    input_tokens: int, output_tokens: int, *, cache: CacheUsage | None = None
) -> dict[str, Any]:
    """``message_delta``'s usage: cumulative counts, input ones included (LangChain reads
    input usage only from here)."""
    cache = cache or CacheUsage(input_tokens)
    return {
        "input_tokens": input_tokens,
        "cache_creation_input_tokens": cache.written,
        "cache_read_input_tokens": cache.read,
        "output_tokens": output_tokens,
    }


def content_of(outcome: Outcome, *, tool_id: str | None = None) -> list[dict[str, Any]]:
    """The answer's content blocks (none when nothing was generated: ``max_tokens: 0``)."""
    if outcome.output_tokens == 0:
        return []
    return structured.content(outcome.output, outcome.text, tool_id=tool_id)


def answering_model(engine: Engine, params: MessageParams) -> str:
    """The model an answer names: the engine's own (a model engine names the model that
    answered, whatever was asked), or the one asked for (the echo simulator's answer)."""
    return getattr(engine, "model_id", None) or params.model


def message_json(
    *, msg_id: str, model: str, outcome: Outcome | None, input_tokens: int,
    service_tier: str = "standard", cache: CacheUsage | None = None,
) -> dict[str, Any]:
    """A Message object; with ``outcome=None``, the empty one of ``message_start``."""
    return {
        "id": msg_id,
        "type": "message",
        "role": "assistant",
        "content": [] if outcome is None else content_of(outcome),
        "model": model,
        "stop_reason": None if outcome is None else outcome.stop_reason,
        "stop_sequence": None if outcome is None else outcome.stop_sequence,
        "usage": usage(input_tokens, 1 if outcome is None else outcome.output_tokens,
                       service_tier=service_tier, cache=cache),
    }


async def complete(
    engine: Engine, params: MessageParams, *, msg_id: str, input_tokens: int, seed: int = 0,
    service_tier: str = "standard", cache: CacheUsage | None = None,
    pause_after_tokens: int | None = None,
) -> tuple[dict[str, Any], Outcome]:
    """Generate the whole answer and return the Message object."""
    outcome = Outcome()
    async for _ in generate(engine, params, outcome, seed=seed,
                            pause_after_tokens=pause_after_tokens):
        pass
    return (
        message_json(msg_id=msg_id, model=answering_model(engine, params), outcome=outcome,
                     input_tokens=input_tokens, service_tier=service_tier, cache=cache),
        outcome,
    )
