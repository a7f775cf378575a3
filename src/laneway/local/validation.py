"""Validate Messages API bodies the way the API does, naming the field that is wrong.

The result is a :class:`MessageParams`: the fields the local API acts on, with the
conversation reduced to text for the engine. A ``system``-role message (SDK 2.x's
``SystemMessageParam``: text only) stays a ``system`` turn at its place in the
conversation.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any

from laneway.local.cache import Breakpoint
from laneway.local.engines.base import Engine, Prompt
from laneway.local.models import local_capabilities
from laneway.local.structured import (
    OutputSpec,
    auto_tools,
    chosen,
    instructed,
    parse_output,
)
from laneway.local.tool_changes import offered_tools
from laneway.local.unsupported import check_supported
from laneway.wire.errors import APIError, invalid

_ROLES = ("user", "assistant", "system")


@dataclass(frozen=True, slots=True)
class MessageParams:
    model: str
    max_tokens: int
    prompt: Prompt
    stop_sequences: tuple[str, ...]
    temperature: float
    top_p: float | None
    top_k: int | None
    stream: bool
    #: The prompt's ``cache_control`` markers, in prompt order.
    breakpoints: tuple[Breakpoint, ...] = ()
    #: Whether the request set any of temperature / top_p / top_k (if not, the engine's
    #: own sampling defaults apply).
    sampling_set: bool = False
    #: JSON the answer must be (structured outputs, a forced tool call), if any.
    output: OutputSpec | None = None
    #: The custom tools the model may call of its own accord (see structured.auto_tools).
    auto_tools: tuple[dict[str, Any], ...] = ()


def _is_int(v: object) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _is_number(v: object) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool)


def _block_text(block: object, field: str) -> str:
    if not isinstance(block, dict):
        raise invalid(field, "Input should be a valid dictionary or object")
    kind = block.get("type")
    if not isinstance(kind, str):
        raise invalid(f"{field}.type", "Field required")
    if kind == "text":
        text = block.get("text")
        if not isinstance(text, str):
            raise invalid(f"{field}.text", "Input should be a valid string")
        return text
    if kind == "tool_result":
        content = block.get("content", "")
        if isinstance(content, str):
            return content
        if isinstance(content, list):
            return "".join(
                _block_text(b, f"{field}.content.{i}") for i, b in enumerate(content)
            )
        raise invalid(f"{field}.content", "Input should be a valid string or list")
    if kind == "tool_use":
        return str(block.get("input", ""))
    if kind == "search_result":
        content = block.get("content", [])
        if not isinstance(content, list):
            raise invalid(f"{field}.content", "Input should be a valid list")
        title = block.get("title")
        head = f"{title}\n" if isinstance(title, str) and title else ""
        return head + "".join(
            _block_text(b, f"{field}.content.{i}") for i, b in enumerate(content))
    source = block.get("source")
    if kind == "document" and isinstance(source, dict) and source.get("type") == "text":
        data = source.get("data")
        if not isinstance(data, str):
            raise invalid(f"{field}.source.data", "Input should be a valid string")
        return data
    # Images, documents, thinking, tool changes: nothing the engines read as text.
    return ""


def _content_text(content: object, field: str) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(_block_text(b, f"{field}.{i}") for i, b in enumerate(content))
    raise invalid(field, "Input should be a valid string or a list of content blocks")


def _system_text(content: object, field: str, *, tool_changes: bool = False) -> str:
    """A system prompt's text: a string or text blocks (a system message's may also
    change the tools offered: see :mod:`laneway.local.tool_changes`)."""
    allowed = ("text", "tool_addition", "tool_removal") if tool_changes else ("text",)
    if isinstance(content, list):
        for i, block in enumerate(content):
            if isinstance(block, dict) and block.get("type") not in allowed:
                raise invalid(f"{field}.{i}.type", "Input should be " + ", ".join(
                    repr(a) for a in allowed))
    return _content_text(content, field)


def _shown(messages: list[Any], i: int) -> bool:
    """Whether system message ``i`` is in front of the model: ``clear_at:
    "next_user_message"`` hides it once a later user message exists."""
    clear_at = messages[i].get("clear_at")
    if clear_at not in (None, "never", "next_user_message"):
        raise invalid(f"messages.{i}.clear_at", "Input should be 'next_user_message' or "
                      "'never'")
    return clear_at != "next_user_message" or not any(
        isinstance(m, dict) and m.get("role") == "user" for m in messages[i + 1:])


def _prompt(body: dict[str, Any]) -> Prompt:
    messages = body.get("messages")
    if messages is None:
        raise invalid("messages", "Field required")
    if not isinstance(messages, list):
        raise invalid("messages", "Input should be a valid list")
    if not messages:
        raise invalid("messages", "at least one message is required")
    turns: list[tuple[str, str]] = []
    for i, msg in enumerate(messages):
        field = f"messages.{i}"
        if not isinstance(msg, dict):
            raise invalid(field, "Input should be a valid dictionary or object")
        role = msg.get("role")
        if role is None:
            raise invalid(f"{field}.role", "Field required")
        if role not in _ROLES:
            raise invalid(f"{field}.role", "Input should be 'user', 'assistant' or 'system'")
        if "content" not in msg:
            raise invalid(f"{field}.content", "Field required")
        if role == "system":
            text = _system_text(msg["content"], f"{field}.content", tool_changes=True)
            if _shown(messages, i):
                turns.append((role, text))
        else:
            turns.append((role, _content_text(msg["content"], f"{field}.content")))
    system = body.get("system", "")
    if system is None:
        system = ""
    system_text = _system_text(system, "system")
    return Prompt(system=system_text, turns=tuple(turns))


#: The API refuses more ``cache_control`` markers than this.
MAX_BREAKPOINTS = 4


def _ttl(block: object) -> str | None:
    control = block.get("cache_control") if isinstance(block, dict) else None
    if not isinstance(control, dict):
        return None
    ttl = control.get("ttl", "5m")
    return ttl if isinstance(ttl, str) else "5m"


def _breakpoints(body: dict[str, Any], prompt: Prompt) -> tuple[Breakpoint, ...]:
    """The ``cache_control`` markers of an already validated body, each with its prefix:
    system blocks, then message content blocks, then the top-level marker (the whole)."""
    out: list[Breakpoint] = []
    system = body.get("system")
    if isinstance(system, list):
        for j, block in enumerate(system):
            ttl = _ttl(block)
            if ttl is not None:
                text = "".join(_block_text(b, "system") for b in system[: j + 1])
                out.append(Breakpoint(Prompt(system=text, turns=()), ttl))
    messages = body["messages"]
    turn = 0  # the prompt turn of message i (a hidden system message has none)
    for i, msg in enumerate(messages):
        content = msg["content"]
        kept = msg["role"] != "system" or _shown(messages, i)
        for j, block in enumerate(content if isinstance(content, list) and kept else []):
            ttl = _ttl(block)
            if ttl is not None:
                text = "".join(_block_text(b, "messages") for b in content[: j + 1])
                turns = (*prompt.turns[:turn], (prompt.turns[turn][0], text))
                out.append(Breakpoint(Prompt(system=prompt.system, turns=turns), ttl))
        turn += kept
    top = _ttl(body)
    if top is not None:
        out.append(Breakpoint(prompt, top))
    if len(out) > MAX_BREAKPOINTS:
        raise invalid("cache_control", f"A maximum of {MAX_BREAKPOINTS} blocks with "
                      f"cache_control may be provided. Found {len(out)}.")
    return tuple(out)


def _model(body: dict[str, Any]) -> str:
    model = body.get("model")
    if model is None:
        raise invalid("model", "Field required")
    if not isinstance(model, str) or not model:
        raise invalid("model", "Input should be a non-empty string")
    return model


def validate_count_tokens(body: object) -> tuple[str, Prompt]:
    """Validate a ``count_tokens`` body: the model and the conversation."""
    if not isinstance(body, dict):
        raise APIError("invalid_request_error", "The request body must be a JSON object")
    prompt = _prompt(body)
    return _model(body), instructed(prompt, parse_output(body, prompt))


def _sampling(body: dict[str, Any]) -> tuple[float, float | None, int | None]:
    """``temperature`` (1.0 when unset), ``top_p`` and ``top_k``, checked."""
    temperature = body.get("temperature", 1.0)
    if temperature is None:
        temperature = 1.0
    if not _is_number(temperature) or not 0.0 <= float(temperature) <= 1.0:
        raise invalid("temperature", "Input should be a number between 0 and 1")
    top_p = body.get("top_p")
    if top_p is not None and (not _is_number(top_p) or not 0.0 <= float(top_p) <= 1.0):
        raise invalid("top_p", "Input should be a number between 0 and 1")
    top_k = body.get("top_k")
    if top_k is not None and (not _is_int(top_k) or top_k < 0):
        raise invalid("top_k", "Input should be a non-negative integer")
    return float(temperature), None if top_p is None else float(top_p), top_k


def with_tool_call(params: MessageParams, engine: Engine) -> MessageParams:
    """``params`` with the tool call the engine makes of its own accord, if it does. The
    prompt stays as sent (no instruction is added, unlike a forced call): the usage of a
    request does not depend on what the model chose."""
    output = chosen(engine, params.prompt, params.auto_tools)
    return params if output is None else replace(params, output=output)


def validate_message(
    body: object, *, in_batch: bool = False, capabilities: Mapping[str, Any] | None = None,
) -> MessageParams:
    """Validate a ``/v1/messages`` body (or a batch request's ``params``), refusing what
    the engine (``capabilities``, as its model entry states them) cannot honour."""
    if not isinstance(body, dict):
        raise APIError("invalid_request_error", "The request body must be a JSON object")
    model = _model(body)
    if "max_tokens" not in body:
        raise invalid("max_tokens", "Field required")
    max_tokens = body["max_tokens"]
    if not _is_int(max_tokens):
        raise invalid("max_tokens", "Input should be a valid integer")
    if max_tokens < 0:  # 0 fills the prompt cache and generates nothing
        raise invalid("max_tokens", "Input should be greater than or equal to 0")
    if body.get("thread") is not None:  # the local API answers threads before this
        raise invalid("thread", "message threads are not supported inside a message batch")
    prompt = _prompt(body)

    stops = body.get("stop_sequences") or []
    if not isinstance(stops, list) or not all(isinstance(s, str) for s in stops):
        raise invalid("stop_sequences", "Input should be a valid list of strings")
    if any(not s.strip() for s in stops):
        raise invalid("stop_sequences", "each stop sequence must contain non-whitespace")

    temperature, top_p, top_k = _sampling(body)
    stream = body.get("stream", False)
    if stream is None:
        stream = False
    if not isinstance(stream, bool):
        raise invalid("stream", "Input should be a valid boolean")
    if in_batch and stream:
        raise invalid("stream", "streaming is not supported inside a message batch")
    metadata = body.get("metadata")
    if metadata is not None and not isinstance(metadata, dict):
        raise invalid("metadata", "Input should be a valid dictionary or object")
    check_supported(body, local_capabilities() if capabilities is None else capabilities)
    breakpoints = _breakpoints(body, prompt)
    offered = {**body, "tools": offered_tools(body)}
    output = parse_output(offered, prompt)
    return MessageParams(
        model=model,
        max_tokens=max_tokens,
        prompt=instructed(prompt, output),
        stop_sequences=tuple(stops),
        temperature=temperature,
        top_p=top_p,
        top_k=top_k,
        stream=stream,
        breakpoints=breakpoints,
        sampling_set=any(body.get(k) is not None for k in ("temperature", "top_p", "top_k")),
        output=output,
        auto_tools=auto_tools(offered) if output is None else (),
    )
