"""Every request field the installed SDK can send is known to the local API.

The installed SDK's ``MessageCreateParams`` (plain and beta) are walked: each top-level
field, each content-block ``type`` (user, assistant and system messages, ``tool_result``
content) and each ``tools[].type`` must be in :mod:`laneway.local.surface`, honoured,
ignored with a reason, or refused. Then each is sent once: a refused one must be a 400
naming it, any other one answered. This runs in the pinned environment and the newest
one (``scripts/test --newest``), so a new SDK release fails here, naming the new field.
"""

from __future__ import annotations

import collections.abc as cabc
import types
import typing
from collections.abc import Iterator
from typing import Any, get_args, get_origin, get_type_hints

import anthropic
import httpx2
import pytest
import typing_extensions as te
from anthropic.types import message_create_params as plain
from anthropic.types.beta import message_create_params as beta

from laneway.local import LocalConfig, RunningLocal, start_local
from laneway.local.surface import BLOCKS, FIELDS, HEADER_PARAMS, TOOLS, Use

SDK = f"anthropic {anthropic.__version__}"
_WRAPPERS = {te.Required, te.NotRequired, typing.Required, typing.NotRequired,
             typing.Annotated, te.Annotated, typing.Union, types.UnionType, list,
             cabc.Iterable, cabc.Sequence, typing.List}  # noqa: UP006 (a runtime origin)


def _leaves(tp: Any) -> list[Any]:
    """``tp`` without Required/Optional/Union/Iterable/list/Annotated around it."""
    if get_origin(tp) in _WRAPPERS:
        return [leaf for arg in get_args(tp) for leaf in _leaves(arg)]
    return [tp]


def _hints(td: Any) -> dict[str, Any]:
    return get_type_hints(td, include_extras=True)


def _typed_dicts(tp: Any) -> list[Any]:
    return [leaf for leaf in _leaves(tp) if te.is_typeddict(leaf)]


def _types(tp: Any) -> dict[str, list[Any]]:
    """The ``type`` literals of the TypedDicts in ``tp``, each with its TypedDicts."""
    out: dict[str, list[Any]] = {}
    for td in _typed_dicts(tp):
        for literal in _leaves(_hints(td).get("type")):
            for value in get_args(literal):
                out.setdefault(value, []).append(td)
    return out


PARAMS = [plain.MessageCreateParamsNonStreaming, plain.MessageCreateParamsStreaming,
          beta.MessageCreateParamsNonStreaming, beta.MessageCreateParamsStreaming]


def sdk_fields() -> set[str]:
    return {name for params in PARAMS for name in _hints(params)}


def sdk_blocks() -> set[str]:
    """Content-block types of every message role, and of ``tool_result`` content."""
    blocks: set[str] = set()
    results: list[Any] = []
    for params in PARAMS:
        for message in _typed_dicts(_hints(params)["messages"]):
            found = _types(_hints(message)["content"])
            blocks |= found.keys()
            results += found.get("tool_result", [])
    for td in results:
        blocks |= _types(_hints(td)["content"]).keys()
    return blocks


def sdk_tools() -> set[str]:
    return {name for params in PARAMS for name in _types(_hints(params).get("tools"))}


def test_every_top_level_field_is_known() -> None:
    new = sorted(sdk_fields() - FIELDS.keys() - HEADER_PARAMS.keys())
    assert not new, (f"{SDK} can send request fields the local API does not know: {new}; "
                     "add each to laneway/local/surface.py FIELDS (honoured, ignored with "
                     "why, or refused) and a sample to SAMPLES here")


def test_every_content_block_type_is_known() -> None:
    new = sorted(sdk_blocks() - BLOCKS.keys())
    assert not new, (f"{SDK} can send content blocks the local API does not know: {new}; "
                     "add each to laneway/local/surface.py BLOCKS")


def test_every_tool_type_is_known() -> None:
    new = sorted(sdk_tools() - TOOLS.keys())
    assert not new, (f"{SDK} can send tool types the local API does not know: {new}; "
                     "add each to laneway/local/surface.py TOOLS")


def test_the_walk_finds_what_it_must() -> None:
    """The walk itself works: it sees what every SDK 2.x has (so an empty result above
    means nothing new, not a walk that found nothing)."""
    assert {"model", "messages", "max_tokens", "tools", "system"} <= sdk_fields()
    assert {"text", "image", "tool_use", "tool_result", "thinking"} <= sdk_blocks()
    assert {"custom", "web_search_20250305", "bash_20250124"} <= sdk_tools()


WEATHER = {"name": "get_weather", "description": "The weather in a city.",
           "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}}}
#: One body addition per field of FIELDS (what a client would send).
SAMPLES: dict[str, dict[str, Any]] = {
    "model": {}, "max_tokens": {}, "messages": {},
    "system": {"system": "Be brief."},
    "stop_sequences": {"stop_sequences": ["zzz"]},
    "stream": {"stream": True},
    "temperature": {"temperature": 0.5}, "top_p": {"top_p": 0.9}, "top_k": {"top_k": 5},
    "tools": {"tools": [WEATHER]},
    "tool_choice": {"tools": [WEATHER], "tool_choice": {"type": "none"}},
    "output_config": {"output_config": {"effort": "low"}},
    "cache_control": {"cache_control": {"type": "ephemeral"}},
    "thread": {"thread": {"type": "create"}},
    "billing_policy": {"billing_policy": {"type": "billing_policy", "bill_to": "self"}},
    "metadata": {"metadata": {"user_id": "u-1"}},
    "thinking": {"thinking": {"type": "adaptive"}},
    "service_tier": {"service_tier": "auto"},
    "speed": {"speed": "standard"},
    "inference_geo": {"inference_geo": "us"},
    "container": {"container": "container_1"},
    "diagnostics": {"diagnostics": {"previous_message_id": None}},
    "context_management": {"context_management": {"edits": []}},
    "fallbacks": {"fallbacks": "default"},
    "fallback_credit_token": {"fallback_credit_token": "fct_1"},
    "compaction": {"compaction": {"type": "summarize"}},
    "mcp_servers": {"mcp_servers": [{"type": "url", "url": "https://mcp.invalid",
                                     "name": "x"}]},
    "output_format": {"output_format": {"type": "json_schema", "schema": {"type": "object"}}},
}
_ASSISTANT_SIDE = {"tool_use", "thinking", "redacted_thinking", "fallback", "compaction",
                   "server_tool_use", "mcp_tool_use", "mcp_tool_result", "mcp_tool_listing"}
_IN_TOOL_RESULT = {"tool_reference", "browser_state"}
_IN_SYSTEM = {"tool_addition", "tool_removal"}
#: Honoured only by an engine whose model entry has the capability (echo has none).
_NEEDS_CAPABILITY = {"image"}


def _block(kind: str) -> dict[str, Any]:
    samples: dict[str, dict[str, Any]] = {
        "text": {"text": "hi"},
        "tool_use": {"id": "toolu_1", "name": "get_weather", "input": {}},
        "tool_result": {"tool_use_id": "toolu_1", "content": "sunny"},
        "document": {"source": {"type": "text", "media_type": "text/plain", "data": "doc"}},
        "image": {"source": {"type": "base64", "media_type": "image/png", "data": "iVBO"}},
        "search_result": {"source": "https://a.example", "title": "T",
                          "content": [{"type": "text", "text": "body"}]},
        "tool_addition": {"tool": {"type": "tool_reference", "name": "get_weather"}},
        "tool_removal": {"tool": {"type": "tool_reference", "name": "get_weather"}},
        "thinking": {"thinking": "hmm", "signature": "sig"},
        "redacted_thinking": {"data": "x"},
        "tool_reference": {"tool_name": "get_weather"},
        "browser_state": {"state_changes": []},
    }
    return {"type": kind, **samples.get(kind, {})}


def _conversation(kind: str) -> list[dict[str, Any]]:
    block = _block(kind)
    if kind in _IN_TOOL_RESULT:
        block = {"type": "tool_result", "tool_use_id": "toolu_1", "content": [block]}
    if kind in _IN_SYSTEM:
        return [{"role": "system", "content": [block]}, {"role": "user", "content": "hi"}]
    if kind in _ASSISTANT_SIDE:
        return [{"role": "user", "content": "hi"}, {"role": "assistant", "content": [block]},
                {"role": "user", "content": "go on"}]
    return [{"role": "user", "content": [{"type": "text", "text": "hi"}, block]}]


@pytest.fixture(scope="module")
def api() -> Iterator[RunningLocal]:
    running = start_local(LocalConfig())
    try:
        yield running
    finally:
        running.stop(wait=False)


def _post(api: RunningLocal, body: dict[str, Any]) -> httpx2.Response:
    return httpx2.post(f"{api.base_url}/v1/messages", json=body, timeout=10.0,
                       headers={"x-api-key": "k", "anthropic-version": "2023-06-01"})


def _expect(response: httpx2.Response, refused: bool, *, names: str) -> None:
    if not refused:
        assert response.status_code == 200, response.text
        return
    assert response.status_code == 400, response.text
    message = response.json()["error"]["message"]
    assert names in message, message


BASE = {"model": "claude-sonnet-5", "max_tokens": 10,
        "messages": [{"role": "user", "content": "hi"}]}


@pytest.mark.parametrize("field", sorted(FIELDS))
def test_each_field_is_answered_as_the_table_says(api: RunningLocal, field: str) -> None:
    assert field in SAMPLES, f"{field}: add a sample body to SAMPLES"
    response = _post(api, {**BASE, **SAMPLES[field]})
    _expect(response, FIELDS[field].use is Use.REFUSED, names=f"{field}: ")


@pytest.mark.parametrize("kind", sorted(BLOCKS))
def test_each_block_is_answered_as_the_table_says(api: RunningLocal, kind: str) -> None:
    body = {**BASE, "tools": [WEATHER], "messages": _conversation(kind)}
    refused = BLOCKS[kind].use is Use.REFUSED or kind in _NEEDS_CAPABILITY
    _expect(_post(api, body), refused, names="messages.")


@pytest.mark.parametrize("kind", sorted(TOOLS))
def test_each_tool_type_is_answered_as_the_table_says(api: RunningLocal, kind: str) -> None:
    tool = WEATHER if kind == "custom" else {"type": kind, "name": kind.split("_20")[0]}
    _expect(_post(api, {**BASE, "tools": [tool]}), TOOLS[kind].use is Use.REFUSED,
            names=f"tools.0.type: {kind!r}")
