"""What the local API does not do, answered as the API would: a 400 naming the field.

Which fields, content blocks and tool types are honoured, ignored or refused, and why,
is the table in :mod:`laneway.local.surface`; this module applies it to a body. Some
refusals follow the engine's capabilities (:func:`laneway.local.models.capabilities_of`):
images and PDFs the engine cannot see, structured outputs or a forced tool call
(``tool_choice`` ``any`` / ``tool``) from an engine that cannot keep to a schema (both
engines can, see :mod:`laneway.local.structured`), so an engine that gains one is let
through without a change here. A field the API does not have is refused as the API
refuses it ("Extra inputs are not permitted").
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from laneway.local.surface import BLOCKS, FIELDS, TOOLS, Use, rule_of
from laneway.wire.errors import invalid

_THINKING_TYPES = ("enabled", "adaptive", "disabled", "between_tools")
_EFFORTS = ("low", "medium", "high", "max", "xhigh")


def _supported(caps: Mapping[str, Any], *path: str) -> bool:
    node: Any = caps
    for key in path:
        node = node.get(key) if isinstance(node, Mapping) else None
    return bool(isinstance(node, Mapping) and node.get("supported"))


def check_supported(body: Mapping[str, Any], caps: Mapping[str, Any]) -> None:
    """Raise a 400 naming the first field of ``body`` the local API cannot honour."""
    for key in body:
        rule = rule_of(FIELDS, key)
        if rule is None:
            raise invalid(key, "Extra inputs are not permitted")
        if rule.use is Use.REFUSED and body[key] is not None:
            raise invalid(key, rule.why)
    _check_billing(body.get("billing_policy"))
    _check_thinking(body.get("thinking"), caps, body.get("max_tokens"))
    _check_tools(body.get("tools"), body.get("tool_choice"), caps)
    _check_output_config(body.get("output_config"), caps)
    _check_cache_control(body.get("cache_control"), "cache_control")
    tier = body.get("service_tier")
    if tier is not None and tier not in ("auto", "standard_only"):
        raise invalid("service_tier", "Input should be 'auto' or 'standard_only'")
    messages = body.get("messages")
    if isinstance(messages, list):
        for i, msg in enumerate(messages):
            content = msg.get("content") if isinstance(msg, dict) else None
            if isinstance(content, list):
                for j, block in enumerate(content):
                    _check_block(block, f"messages.{i}.content.{j}", caps)


def _check_thinking(thinking: object, caps: Mapping[str, Any], max_tokens: object) -> None:
    if thinking is None:
        return
    if not isinstance(thinking, dict) or thinking.get("type") not in _THINKING_TYPES:
        raise invalid("thinking.type", "Input should be one of " + ", ".join(
            repr(t) for t in _THINKING_TYPES))
    kind = thinking["type"]
    if not _supported(caps, "thinking", "types", kind):
        raise invalid("thinking.type", f"{kind!r} is not supported by this model")
    if kind == "enabled":
        budget = thinking.get("budget_tokens")
        if not isinstance(budget, int) or isinstance(budget, bool) or budget < 1024:
            raise invalid("thinking.budget_tokens", "Input should be an integer >= 1024")
        if isinstance(max_tokens, int) and budget >= max_tokens:
            raise invalid("thinking.budget_tokens", "`max_tokens` must be greater than "
                          f"`thinking.budget_tokens` ({budget})")


def _check_tools(tools: object, choice: object, caps: Mapping[str, Any]) -> None:
    if tools is not None:
        if not isinstance(tools, list):
            raise invalid("tools", "Input should be a valid list")
        for i, tool in enumerate(tools):
            if not isinstance(tool, dict):
                raise invalid(f"tools.{i}", "Input should be a valid dictionary or object")
            check_tool(tool, f"tools.{i}")
    if choice is None:
        return
    kind = choice.get("type") if isinstance(choice, dict) else None
    if kind not in ("auto", "any", "tool", "none"):
        raise invalid("tool_choice.type", "Input should be 'auto', 'any', 'tool' or 'none'")
    if kind in ("any", "tool") and not _supported(caps, "structured_outputs"):
        # A forced call is decoded under the tool's input_schema, as structured outputs
        # are: an engine that cannot keep to a schema could not hold the tool_use it must.
        raise invalid("tool_choice.type", f"{kind!r} is not supported by this model: "
                      "it cannot keep a tool's input to its schema (use 'auto' or 'none')")


def check_tool(tool: dict[str, Any], field: str) -> None:
    """A 400 naming ``field`` for a tool the local API refuses or a custom tool's shape."""
    kind = tool.get("type", "custom")
    rule = rule_of(TOOLS, kind)
    if rule is None:
        raise invalid(f"{field}.type", f"unknown tool type {kind!r}")
    if rule.use is Use.REFUSED:
        raise invalid(f"{field}.type", f"{kind!r}: {rule.why}")
    if kind == "custom":
        if not isinstance(tool.get("name"), str):
            raise invalid(f"{field}.name", "Field required")
        if not isinstance(tool.get("input_schema"), dict):
            raise invalid(f"{field}.input_schema", "Field required")


def _check_billing(policy: object) -> None:
    if policy is None:
        return
    if not isinstance(policy, dict) or policy.get("type") != "billing_policy":
        raise invalid("billing_policy.type", "Input should be 'billing_policy'")
    bill_to = policy.get("bill_to", "self")
    if bill_to == "user_profile":
        raise invalid("billing_policy.bill_to", "the local API has no user profiles to "
                      "bill: omit billing_policy or send bill_to 'self'")
    if bill_to != "self":
        raise invalid("billing_policy.bill_to", "Input should be 'self' or 'user_profile'")


def _check_output_config(config: object, caps: Mapping[str, Any]) -> None:
    if config is None:
        return
    if not isinstance(config, dict):
        raise invalid("output_config", "Input should be a valid dictionary or object")
    effort = config.get("effort")
    if effort is not None and effort not in _EFFORTS:
        raise invalid("output_config.effort", "Input should be one of " + ", ".join(
            repr(e) for e in _EFFORTS))
    if config.get("format") is not None and not _supported(caps, "structured_outputs"):
        raise invalid("output_config.format",
                      "structured outputs are not supported by this model")


def _check_cache_control(control: object, field: str) -> None:
    if control is None:
        return
    if not isinstance(control, dict) or control.get("type") != "ephemeral":
        raise invalid(f"{field}.type", "Input should be 'ephemeral'")
    if control.get("ttl", "5m") not in ("5m", "1h"):
        raise invalid(f"{field}.ttl", "Input should be '5m' or '1h'")


def _check_block(block: object, field: str, caps: Mapping[str, Any]) -> None:
    if not isinstance(block, dict):
        return  # the shape is validation's to report
    kind = block.get("type")
    _check_cache_control(block.get("cache_control"), f"{field}.cache_control")
    rule = rule_of(BLOCKS, kind)
    if rule is None:
        raise invalid(f"{field}.type", f"unknown content block type {kind!r}")
    if rule.use is Use.REFUSED:
        raise invalid(f"{field}.type", f"content block {kind!r}: {rule.why}")
    if rule.use is Use.IGNORED:
        return
    if kind == "image" and not _supported(caps, "image_input"):
        raise invalid(field, "image input is not supported by this model")
    if kind == "document":
        source = block.get("source")
        text = isinstance(source, dict) and source.get("type") == "text"
        if not text and not _supported(caps, "pdf_input"):
            raise invalid(f"{field}.source",
                          "only plain-text documents are supported by this model")
    if kind == "tool_result" and isinstance(block.get("content"), list):
        for k, inner in enumerate(block["content"]):
            _check_block(inner, f"{field}.content.{k}", caps)
