"""Structured outputs and forced tool calls: what a request asks for, and its wire shapes.

``output_config.format`` ``{type: "json_schema", schema}`` makes the text block JSON
valid against the schema; ``tool_choice`` ``{type: "tool", name}`` or ``{type: "any"}``
makes the answer one ``tool_use`` block whose input is valid against the tool's
``input_schema`` (``stop_reason: "tool_use"``, streamed as ``input_json_delta``). Either
way the engine decodes under the schema (:attr:`SamplingParams.json_schema`), and the
system prompt tells the model what to write. ``tool_choice`` ``auto`` (the default) and
``none`` answer text.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

from laneway.local.engines.base import Engine, Prompt, UnsupportedSchemaError
from laneway.wire.errors import APIError, invalid
from laneway.wire.ids import new_id


@dataclass(frozen=True, slots=True)
class OutputSpec:
    """The answer must be JSON valid against ``schema``: a ``tool_use`` input of tool
    ``tool``, or (``tool is None``) the text block."""

    schema: str
    field: str
    tool: str | None = None
    description: str = ""


def _schema_text(schema: object, field: str) -> str:
    if not isinstance(schema, dict):
        raise invalid(field, "Input should be a valid dictionary or object")
    return json.dumps(schema, separators=(",", ":"), ensure_ascii=False)


def _tools(body: dict[str, Any]) -> tuple[list[tuple[int, dict[str, Any]]], set[str]]:
    """The custom tools (with their index), and the names of the others (tools the
    client runs, whose input schema the local API does not know)."""
    tools = body.get("tools")
    if tools is None:
        return [], set()
    if not isinstance(tools, list):
        raise invalid("tools", "Input should be a valid list")
    custom: list[tuple[int, dict[str, Any]]] = []
    others: set[str] = set()
    for i, tool in enumerate(tools):
        if not isinstance(tool, dict):
            raise invalid(f"tools.{i}", "Input should be a valid dictionary or object")
        if tool.get("type") not in (None, "custom"):
            others.add(str(tool.get("name") or tool.get("type")))
            continue
        if not isinstance(tool.get("name"), str) or not tool["name"]:
            raise invalid(f"tools.{i}.name", "Field required")
        if not isinstance(tool.get("input_schema"), dict):
            raise invalid(f"tools.{i}.input_schema", "Field required")
        custom.append((i, tool))
    return custom, others


def _best_tool(tools: list[tuple[int, dict[str, Any]]], prompt: Prompt) -> int:
    """For ``tool_choice: any``: the tool whose name and description share the most words
    with the last user turn (the first one on a tie)."""
    words = set(re.findall(r"\w+", prompt.last_user_text.lower()))

    def score(tool: dict[str, Any]) -> int:
        text = f"{tool['name'].replace('_', ' ')} {tool.get('description') or ''}"
        return len(words & set(re.findall(r"\w+", text.lower())))

    return max(range(len(tools)), key=lambda k: (score(tools[k][1]), -k))


def parse_output(body: dict[str, Any], prompt: Prompt) -> OutputSpec | None:
    """What ``tools`` / ``tool_choice`` / ``output_config`` ask of the answer."""
    tools, others = _tools(body)
    choice = body.get("tool_choice")
    if choice is not None:
        if not isinstance(choice, dict) or choice.get("type") not in ("auto", "any", "tool",
                                                                       "none"):
            raise invalid("tool_choice.type",
                          "Input should be 'auto', 'any', 'tool' or 'none'")
        kind = choice["type"]
        if kind == "tool" and choice.get("name") in others:
            raise invalid("tool_choice.name", f"{choice['name']!r} is a tool the client "
                          "runs: the local API cannot force a call of it (it knows no "
                          "input schema for it)")
        if kind in ("any", "tool") and not tools:
            raise invalid("tool_choice", f"tool_choice {kind!r} needs at least one "
                          "custom tool")
        if kind in ("any", "tool"):
            if kind == "tool":
                named = [k for k, (_, t) in enumerate(tools) if t["name"] == choice.get("name")]
                if not named:
                    raise invalid("tool_choice.name", f"no tool named {choice.get('name')!r}")
                pick = named[0]
            else:
                pick = _best_tool(tools, prompt)
            index, tool = tools[pick]
            field = f"tools.{index}.input_schema"
            return OutputSpec(schema=_schema_text(tool["input_schema"], field), field=field,
                              tool=tool["name"], description=str(tool.get("description") or ""))
    config = body.get("output_config")
    if config is None:
        return None
    if not isinstance(config, dict):
        raise invalid("output_config", "Input should be a valid dictionary or object")
    fmt = config.get("format")
    if fmt is None:
        return None
    if not isinstance(fmt, dict) or fmt.get("type") != "json_schema":
        raise invalid("output_config.format.type", "Input should be 'json_schema'")
    field = "output_config.format.schema"
    return OutputSpec(schema=_schema_text(fmt.get("schema"), field), field=field)


def auto_tools(body: dict[str, Any]) -> tuple[dict[str, Any], ...]:
    """The custom tools the model may call of its own accord (``tool_choice`` ``auto``,
    the default): none under ``none`` or a forced choice, and none in answer to tool
    results, so a tool loop with an engine that picks by rule always ends."""
    choice = body.get("tool_choice")
    if isinstance(choice, dict) and choice.get("type") != "auto":
        return ()
    messages = body.get("messages")
    last = messages[-1] if isinstance(messages, list) and messages else None
    content = last.get("content") if isinstance(last, dict) else None
    if isinstance(content, list) and any(
            isinstance(b, dict) and b.get("type") == "tool_result" for b in content):
        return ()
    return tuple(tool for _, tool in _tools(body)[0])


def chosen(engine: Engine, prompt: Prompt,
           tools: tuple[dict[str, Any], ...]) -> OutputSpec | None:
    """The tool call an engine that chooses tools by rule (``choose_tool``, the echo
    engine's) makes of its own accord, if any; other engines answer text."""
    choose = getattr(engine, "choose_tool", None)
    if choose is None or not tools:
        return None
    index = choose(prompt.last_user_text, [t["name"] for t in tools])
    if index is None:
        return None
    tool = tools[index]
    output = OutputSpec(schema=_schema_text(tool["input_schema"], "tools"), field="tools",
                        tool=tool["name"], description=str(tool.get("description") or ""))
    try:
        check(engine, output)
    except APIError:  # a schema it cannot follow: it answers text instead
        return None
    return output


def instructed(prompt: Prompt, output: OutputSpec | None) -> Prompt:
    """``prompt`` with the system prompt telling the model which JSON to write."""
    if output is None:
        return prompt
    if output.tool is not None:
        what = f"Call the tool {output.tool}"
        what += f" ({output.description.strip()})" if output.description.strip() else ""
        text = (f"{what}: reply with only its input, a JSON object valid against this "
                f"JSON schema: {output.schema}")
    else:
        text = f"Reply with only JSON valid against this JSON schema: {output.schema}"
    system = f"{prompt.system}\n\n{text}" if prompt.system else text
    return Prompt(system=system, turns=prompt.turns)


def check(engine: Engine, output: OutputSpec | None) -> None:
    """A 400 naming the schema's field when ``engine`` cannot hold its output to it."""
    if output is None:
        return
    checker = getattr(engine, "check_schema", None)
    if checker is None:
        return
    try:
        checker(output.schema)
    except UnsupportedSchemaError as exc:
        raise invalid(output.field, f"unsupported JSON schema: {exc}") from None


def block_start(output: OutputSpec | None) -> dict[str, Any]:
    """The empty content block a stream starts with."""
    if output is None or output.tool is None:
        return {"type": "text", "text": ""}
    return {"type": "tool_use", "id": new_id("toolu"), "name": output.tool, "input": {}}


def delta(output: OutputSpec | None, text: str) -> dict[str, Any]:
    """One streamed piece of the block."""
    if output is None or output.tool is None:
        return {"type": "text_delta", "text": text}
    return {"type": "input_json_delta", "partial_json": text}


def content(output: OutputSpec | None, text: str, *,
            tool_id: str | None = None) -> list[dict[str, Any]]:
    """The content of the whole Message (``tool_id``: the one its stream started with)."""
    if output is None or output.tool is None:
        return [{"type": "text", "text": text}]
    try:
        tool_input = json.loads(text)
    except ValueError:  # cut short (max_tokens): the API would send what it has
        tool_input = {}
    if not isinstance(tool_input, dict):
        tool_input = {}
    return [{"type": "tool_use", "id": tool_id or new_id("toolu"), "name": output.tool,
             "input": tool_input}]

