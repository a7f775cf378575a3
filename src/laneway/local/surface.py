"""The request surface of the Messages API as the local API treats it, in one place.

Every top-level field, content-block ``type`` and ``tools[].type`` the official SDK can
send is here, each with what the local API does with it and why:

- **honoured**: acted on as the API acts on it (some only when the engine's model entry
  has the capability, else a 400 naming the field);
- **ignored**: accepted and not acted on, because ignoring it cannot change what a
  client relies on (the reason says why);
- **refused**: a 400 ``invalid_request_error`` that names the field, with the reason.

A field that is in none of the tables is refused as the API refuses one it does not
have ("Extra inputs are not permitted"). ``tests/local/test_surface.py`` walks the
installed SDK's ``MessageCreateParams`` (plain and beta) against these tables, in the
pinned environment and the newest one, so the next SDK's new field fails a test that
names it before it fails a user's request.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum


class Use(StrEnum):
    HONOURED = "honoured"
    IGNORED = "ignored"
    REFUSED = "refused"


@dataclass(frozen=True, slots=True)
class Rule:
    use: Use
    #: Why; for a refused one, the message of its 400 (after ``field: ``).
    why: str


def _h(why: str) -> Rule:
    return Rule(Use.HONOURED, why)


def _i(why: str) -> Rule:
    return Rule(Use.IGNORED, why)


def _r(why: str) -> Rule:
    return Rule(Use.REFUSED, why)


_SERVER_TOOL = _r("server tools are not supported by the local API: it runs none")
_SERVER_RESULT = _r("the result of a server tool the local API does not run is not "
                    "supported by the local API")
_MCP = _r("the MCP connector is not supported by the local API")
_CLIENT_TOOL = _i("a tool the client runs: the model may call it or not, and the local "
                  "engines never do (they know no input schema for it), an answer the API "
                  "can give too; a tool_choice that forces one is refused")

#: Top-level body fields (SDK 2.x ``MessageCreateParams``, plain and beta, and the
#: sampling fields that go as ``extra_body``).
FIELDS: Mapping[str, Rule] = {
    "model": _h("names the answer's model; any name is answered by the engine"),
    "max_tokens": _h("0 fills the prompt cache and answers no content"),
    "messages": _h("the conversation"),
    "system": _h("the system prompt"),
    "stop_sequences": _h("never reach the client, even split across tokens"),
    "stream": _h("server-sent events in the API's order"),
    "temperature": _h("sampling"),
    "top_p": _h("sampling"),
    "top_k": _h("sampling"),
    "tools": _h("custom tools; the others per TOOLS"),
    "tool_choice": _h("any and tool force a tool_use valid against its input_schema"),
    "output_config": _h("format: structured outputs; effort is validated and ignored"),
    "cache_control": _h("the prompt cache is simulated: usage reports its reads and writes"),
    "thread": _h("message threads: see laneway.local.threads"),
    "billing_policy": _h("bill_to self is the default; user_profile is refused: the local "
                         "API has no user profiles to bill"),
    "metadata": _i("user_id only tags the request for the provider; no answer depends on it"),
    "thinking": _i("no engine thinks and its model entry says so; an answer without "
                   "thinking blocks is valid under every thinking type"),
    "service_tier": _i("one tier: usage.service_tier says which one answered"),
    "speed": _i("one speed"),
    "inference_geo": _i("answered on this machine"),
    "container": _i("containers hold server tools' files, and server tools are refused"),
    "diagnostics": _i("asks for an optional response field (diagnostics) a client cannot "
                      "count on"),
    "context_management": _i("edits are the server's choice when a threshold is reached; "
                              "an answer that applied none is valid"),
    "fallbacks": _i("a fallback model runs only when the model refuses, and the local "
                    "engines never refuse, as on a model without fallbacks"),
    "fallback_credit_token": _r("not a token the local API issued: it issues one with a "
                                "refusal, and its engines never refuse"),
    "compaction": _r("compaction is not supported by the local API: its engines cannot "
                     "write the API's signed compaction block"),
    "mcp_servers": _MCP,
    "output_format": _r("not supported by the local API: use output_config.format"),
}

#: Parameters of the SDK's ``create()`` that go as headers, never in the body.
HEADER_PARAMS: Mapping[str, str] = {
    "betas": "anthropic-beta",
    "user_profile_id": "anthropic-user-profile-id",
    "workspace_id": "anthropic-workspace-id",
}

#: Content-block types, in ``messages[].content``, a system message, ``tool_result``.
BLOCKS: Mapping[str, Rule] = {
    "text": _h("the engine reads it (citations are ignored)"),
    "tool_use": _h("its input is read as text"),
    "tool_result": _h("its content is read as text"),
    "document": _h("text sources are read; PDFs only with pdf_input (no engine has it)"),
    "image": _h("only with image_input (no engine has it)"),
    "search_result": _h("its title and text are read"),
    "tool_addition": _h("offers a tool from that point of the conversation"),
    "tool_removal": _h("withdraws a tool from that point of the conversation"),
    "thinking": _i("history: not rendered into the prompt"),
    "redacted_thinking": _i("history: not rendered into the prompt"),
    "fallback": _i("marks a fallback hop in history; the API does not render it either"),
    "tool_reference": _i("tool search loads a deferred tool; the local API offers every "
                         "tool from the start"),
    "browser_state": _i("the browser toolset's tab and download events: nothing an engine "
                        "reads"),
    "compaction": _r("a compaction block is the API's signed summary; the local API "
                     "cannot read it"),
    "container_upload": _r("containers are not supported by the local API"),
    "server_tool_use": _SERVER_RESULT,
    "web_search_tool_result": _SERVER_RESULT,
    "web_fetch_tool_result": _SERVER_RESULT,
    "code_execution_tool_result": _SERVER_RESULT,
    "bash_code_execution_tool_result": _SERVER_RESULT,
    "text_editor_code_execution_tool_result": _SERVER_RESULT,
    "tool_search_tool_result": _SERVER_RESULT,
    "advisor_tool_result": _SERVER_RESULT,
    "mcp_tool_use": _MCP,
    "mcp_tool_result": _MCP,
    "mcp_tool_listing": _MCP,
}

#: ``tools[].type`` (absent means ``custom``).
TOOLS: Mapping[str, Rule] = {
    "custom": _h("offered to the model; tool_choice any/tool forces a call"),
    **dict.fromkeys((
        "bash_20241022", "bash_20250124", "text_editor_20241022", "text_editor_20250124",
        "text_editor_20250429", "text_editor_20250728", "computer_20241022",
        "computer_20250124", "computer_20251124", "memory_20250818",
        "browser_toolset_20260801", "computer_toolset_20260801",
    ), _CLIENT_TOOL),
    **dict.fromkeys((
        "web_search_20250305", "web_search_20260209", "web_search_20260318",
        "web_fetch_20250910", "web_fetch_20260209", "web_fetch_20260309",
        "web_fetch_20260318", "code_execution_20250522", "code_execution_20250825",
        "code_execution_20260120", "code_execution_20260521", "tool_search_tool_bm25",
        "tool_search_tool_bm25_20251119", "tool_search_tool_regex",
        "tool_search_tool_regex_20251119", "advisor_20260301",
    ), _SERVER_TOOL),
    "mcp_toolset": _MCP,
}


def rule_of(table: Mapping[str, Rule], name: object) -> Rule | None:
    """The rule for ``name`` in ``table`` (``None``: not a name the API has)."""
    return table.get(name) if isinstance(name, str) else None
