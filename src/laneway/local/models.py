"""``GET /v1/models``: the engine behind the local API, as the Models API lists models.

The local API answers whatever ``model`` a request names; this lists the one engine that
does the answering, with what a client may want to know about it: its context window,
and the sampling it uses when a request sets none (``sampling_defaults``).
"""

from __future__ import annotations

from typing import Any, Protocol

from fastapi import FastAPI, Request

from laneway.local.wire import APIError


class _API(Protocol):
    """What the routes need of :class:`laneway.local.app.LocalAPI`."""

    engine: Any

    def check_auth(self, request: Request) -> None: ...

#: When the entry says the model was made (the API requires a time; this is laneway's).
CREATED_AT = "2026-01-01T00:00:00Z"


def model_entry(engine: Any) -> dict[str, Any]:
    describe = getattr(engine, "describe", None)
    return {
        "type": "model",
        "id": str(engine.name),
        "display_name": describe() if describe is not None else str(engine.name),
        "created_at": CREATED_AT,
        "context_window": getattr(engine, "context_window", None),
        "sampling_defaults": dict(getattr(engine, "sampling_defaults", None) or {}),
    }


def register(app: FastAPI, api: _API) -> None:
    """Add ``GET /v1/models`` and ``GET /v1/models/{id}`` to ``app``."""

    @app.get("/v1/models")
    async def list_models(request: Request) -> dict[str, Any]:
        api.check_auth(request)
        entry = model_entry(api.engine)
        return {"data": [entry], "has_more": False, "first_id": entry["id"],
                "last_id": entry["id"]}

    @app.get("/v1/models/{model_id}")
    async def get_model(request: Request, model_id: str) -> dict[str, Any]:
        api.check_auth(request)
        entry = model_entry(api.engine)
        if model_id != entry["id"]:
            raise APIError("not_found_error", f"model: {model_id}")
        return entry
