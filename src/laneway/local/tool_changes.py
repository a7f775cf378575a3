"""Tools offered mid-conversation: ``tool_addition`` and ``tool_removal`` blocks.

A ``role: "system"`` message (the SDK's ``runner.add_tools()`` / ``remove_tools()``, beta
``inline-tools-2026-09-15``) may offer a tool from that point of the conversation on,
by value (``tool_definition``) or by name (``tool_reference`` to a tool of ``tools`` or
of an earlier addition), or withdraw one by name. What the model is offered when it
answers is ``tools`` changed by every such block in order: that is the set
``tool_choice`` can name. MCP references are refused (the local API has no MCP), and a
name that resolves to no tool is the API's ``tool_reference_unresolved``.
"""

from __future__ import annotations

from typing import Any

from laneway.local.surface import FIELDS
from laneway.local.unsupported import check_tool
from laneway.wire.errors import APIError, invalid

_CHANGES = ("tool_addition", "tool_removal")


def _unresolved(field: str, name: object) -> APIError:
    return APIError("invalid_request_error",
                    f"{field}: no tool named {name!r} is declared in tools or added earlier",
                    details={"error_code": "tool_reference_unresolved"})


def _name(tool: dict[str, Any]) -> str:
    return str(tool.get("name") or tool.get("type") or "")


def _change_blocks(messages: object) -> list[tuple[str, dict[str, Any]]]:
    """Every tool change of the conversation, in order, with its field."""
    out: list[tuple[str, dict[str, Any]]] = []
    if not isinstance(messages, list):
        return out
    for i, msg in enumerate(messages):
        content = msg.get("content") if isinstance(msg, dict) else None
        if not isinstance(content, list):
            continue
        for j, block in enumerate(content):
            if isinstance(block, dict) and block.get("type") in _CHANGES:
                out.append((f"messages.{i}.content.{j}", block))
    return out


def _apply(offered: dict[str, dict[str, Any]], known: dict[str, dict[str, Any]],
           field: str, block: dict[str, Any]) -> None:
    tool = block.get("tool")
    if not isinstance(tool, dict):
        raise invalid(f"{field}.tool", "Field required")
    kind = tool.get("type")
    if kind in ("mcp_tool_reference", "mcp_toolset_reference"):
        raise invalid(f"{field}.tool.type", FIELDS["mcp_servers"].why)
    if kind == "tool_definition" and block["type"] == "tool_addition":
        definition = tool.get("definition")
        if not isinstance(definition, dict):
            raise invalid(f"{field}.tool.definition", "Field required")
        check_tool(definition, f"{field}.tool.definition")
        known[_name(definition)] = offered[_name(definition)] = definition
        return
    if kind != "tool_reference":
        raise invalid(f"{field}.tool.type", "Input should be 'tool_reference'" + (
            " or 'tool_definition'" if block["type"] == "tool_addition" else ""))
    name = tool.get("name")
    if not isinstance(name, str) or name not in known:
        raise _unresolved(f"{field}.tool.name", name)
    if block["type"] == "tool_addition":
        offered[name] = known[name]
    else:
        offered.pop(name, None)


def offered_tools(body: dict[str, Any]) -> list[dict[str, Any]] | None:
    """The tools offered when the model answers ``body`` (``None``: it declares none)."""
    tools = body.get("tools")
    changes = _change_blocks(body.get("messages"))
    if not changes:
        return tools if isinstance(tools, list) else None
    declared = [t for t in tools if isinstance(t, dict)] if isinstance(tools, list) else []
    offered = {_name(t): t for t in declared}
    known = dict(offered)
    for field, block in changes:
        _apply(offered, known, field, block)
    return list(offered.values())
