"""The Anthropic API's routes on ``laneway serve`` (point ``ANTHROPIC_BASE_URL`` here)."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import Response

from laneway.server.gateway.service import gateway_of

router = APIRouter(tags=["Anthropic API (gateway)"])


@router.post("/v1/messages", summary="Create a Message (relayed through the lanes)")
async def create_message(request: Request) -> Response:
    """The Messages API, relayed upstream: streamed requests take the interactive lane,
    the rest the background lane (``laneway-lane`` header to choose). When the quota is
    spent the request waits (60 s interactive, 5 min background) instead of a 429."""
    return await gateway_of(request).messages(request)


@router.post("/v1/messages/count_tokens", summary="Count the tokens of a Message")
async def count_tokens(request: Request) -> Response:
    return await gateway_of(request).passthrough(request, "/v1/messages/count_tokens")


@router.get("/v1/models", summary="List the upstream's models")
async def list_models(request: Request) -> Response:
    return await gateway_of(request).passthrough(request, "/v1/models")


@router.get("/v1/models/{model_id}", summary="Get one of the upstream's models")
async def get_model(model_id: str, request: Request) -> Response:
    return await gateway_of(request).passthrough(request, f"/v1/models/{model_id}")
