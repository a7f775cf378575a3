"""``GET /v1/models``: the models the local API answers to, as the SDK's ``ModelInfo``.

The catalogue is the engine's own model and every Claude model id laneway prices
(:data:`laneway.cost.prices.PRICES`). The local API serves each of them with its one engine,
so every entry states what that engine can do: ``capabilities`` (no thinking: a
``thinking`` request is accepted and ignored, hence ``thinking.supported`` false with
the accepted ``types`` true), ``max_input_tokens`` and ``max_tokens``.

An engine describes itself with ``describe()`` returning a dict merged into the
entries: its own entry takes every key (``id``, ``display_name``, ``created_at``...),
the Claude entries take what is about the engine (limits and ``capabilities``, merged
key by key). Nothing is sent that the SDK's ``ModelInfo`` does not declare: an engine's
sampling defaults are stated in its own ``display_name``. :func:`capabilities_of` is
what the request validation consults.

Listing is newest first (by ``created_at``, then id), paged by ``limit``, ``after_id``
and ``before_id`` like the API's other lists.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping, Sequence
from typing import Any

from laneway.cost.prices import PRICES
from laneway.local.engines.base import Engine
from laneway.wire.errors import APIError

#: Release dates of the Claude models laneway prices (``created_at``).
RELEASED: dict[str, str] = {
    "claude-sonnet-4-5": "2025-09-29",
    "claude-haiku-4-5": "2025-10-15",
    "claude-opus-4-5": "2025-11-24",
    "claude-opus-4-6": "2026-02-05",
    "claude-sonnet-4-6": "2026-02-17",
    "claude-opus-4-7": "2026-04-16",
    "claude-opus-4-8": "2026-05-28",
    "claude-sonnet-5": "2026-06-30",
    "claude-opus-5": "2026-07-24",
}
#: ``created_at`` of a model whose release date is unknown (the API's convention).
EPOCH = "1970-01-01T00:00:00Z"
_LINES = ("haiku", "sonnet", "opus")
#: Keys of an engine's description that are about the model, not the engine: the
#: Claude entries keep their own.
_IDENTITY = frozenset({"id", "display_name", "created_at", "type", "line", "lifecycle",
                       "deprecated_at", "retires_at"})


def _no() -> dict[str, bool]:
    return {"supported": False}


def _yes() -> dict[str, bool]:
    return {"supported": True}


def local_capabilities() -> dict[str, Any]:
    """What the local API does for any engine that says nothing else (SDK
    ``ModelCapabilities``: every key present)."""
    return {
        "batch": _yes(),
        "citations": _no(),
        "code_execution": _no(),
        "context_management": {"supported": False},
        "effort": {"supported": False, "low": _no(), "medium": _no(), "high": _no(),
                   "max": _no()},
        "image_input": _no(),
        "pdf_input": _no(),
        "server_tools": {"supported": False, "code_execution": _no(), "web_search": _no()},
        "structured_outputs": _no(),
        # No engine thinks; ``enabled``/``adaptive`` requests are accepted and ignored.
        "thinking": {"supported": False, "types": {
            "adaptive": _yes(), "between_tools": _yes(), "disabled": _yes(),
            "enabled": _yes()}},
    }


def _merge(base: dict[str, Any], extra: Mapping[str, Any]) -> dict[str, Any]:
    """``extra`` merged into ``base`` key by key (``base`` is changed: pass a fresh one)."""
    for key, value in extra.items():
        if isinstance(value, Mapping) and isinstance(base.get(key), dict):
            base[key] = _merge(base[key], value)
        else:
            base[key] = copy.deepcopy(value)
    return base


def describe(engine: Engine) -> dict[str, Any]:
    """The engine's own description (``{}`` when it has no ``describe()``)."""
    hook = getattr(engine, "describe", None)
    return dict(hook()) if callable(hook) else {}


def display_name(model_id: str) -> str:
    """``claude-opus-4-8`` → ``Claude Opus 4.8``."""
    words = model_id.split("-")
    name = [w.capitalize() for w in words if not w.isdigit()]
    version = ".".join(w for w in words if w.isdigit())
    return " ".join(name + ([version] if version else []))


def _entry(model_id: str, **fields: Any) -> dict[str, Any]:
    return {
        "type": "model", "id": model_id, "display_name": display_name(model_id),
        "created_at": EPOCH, "lifecycle": "active", "deprecated_at": None,
        "retires_at": None, "line": None, "max_input_tokens": None, "max_tokens": None,
        "capabilities": local_capabilities(), **fields,
    }


def catalogue(engine: Engine) -> list[dict[str, Any]]:
    """Every model entry, newest first."""
    facts = describe(engine)
    about_engine = {k: v for k, v in facts.items() if k not in _IDENTITY}
    own = _merge(_entry(getattr(engine, "model_id", None) or engine.name), facts)
    entries = [own]
    for model_id in PRICES:
        if model_id == own["id"]:
            continue
        released = RELEASED.get(model_id)
        line = next((x for x in _LINES if f"-{x}-" in f"{model_id}-"), None)
        entries.append(_merge(_entry(
            model_id, created_at=f"{released}T00:00:00Z" if released else EPOCH, line=line,
        ), about_engine))
    entries.sort(key=lambda e: (e["created_at"], e["id"]), reverse=True)
    return entries


def capabilities_of(engine: Engine) -> dict[str, Any]:
    """The capabilities every model of this engine has (the validation's reference)."""
    caps = describe(engine).get("capabilities")
    if not isinstance(caps, Mapping) or not caps:
        return local_capabilities()
    return _merge(local_capabilities(), caps)


def retrieve(engine: Engine, model_id: str) -> dict[str, Any]:
    for entry in catalogue(engine):
        if entry["id"] == model_id:
            return entry
    raise APIError("not_found_error", f"model: {model_id}")


def page(
    engine: Engine, *, limit: int, after_id: str | None, before_id: str | None,
    lifecycle: Sequence[str] = (),
) -> dict[str, Any]:
    """One page of the listing, with ``has_more``, ``first_id`` and ``last_id``."""
    if not 1 <= limit <= 1000:
        raise APIError("invalid_request_error", "limit: must be between 1 and 1000")
    stages = set(lifecycle) or {"active", "deprecated"}
    unknown = stages - {"active", "deprecated", "retired"}
    if unknown:
        raise APIError("invalid_request_error",
                       f"lifecycle: {sorted(unknown)[0]!r} is not one of active, "
                       "deprecated, retired")
    entries = [e for e in catalogue(engine) if e["lifecycle"] in stages]
    ids = [e["id"] for e in entries]
    if after_id is not None:
        if after_id not in ids:
            raise APIError("invalid_request_error", f"after_id: unknown model {after_id!r}")
        rest = entries[ids.index(after_id) + 1:]
        data, has_more = rest[:limit], len(rest) > limit
    elif before_id is not None:
        if before_id not in ids:
            raise APIError("invalid_request_error", f"before_id: unknown model {before_id!r}")
        rest = entries[: ids.index(before_id)]
        data, has_more = rest[-limit:], len(rest) > limit
    else:
        data, has_more = entries[:limit], len(entries) > limit
    return {
        "data": data, "has_more": has_more,
        "first_id": data[0]["id"] if data else None,
        "last_id": data[-1]["id"] if data else None,
    }
