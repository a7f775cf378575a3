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


@router.post("/v1/messages/batches", summary="Create a Message Batch (a laneway run)")
async def create_batch(request: Request) -> Response:
    """The Message Batches API, fulfilled by a laneway run: by default through the
    upstream's batches (the batch price); ``laneway-deadline: 2h`` or
    ``laneway-mode: auto`` let laneway's planner choose (realtime when that is sooner)."""
    return await gateway_of(request).batches.create(request)


@router.get("/v1/messages/batches", summary="List the client's Message Batches")
async def list_batches(request: Request, limit: int = 20, after_id: str | None = None,
                       before_id: str | None = None) -> Response:
    return await gateway_of(request).batches.listing(request, limit=limit, after_id=after_id,
                                                     before_id=before_id)


@router.get("/v1/messages/batches/{batch_id}", summary="Get a Message Batch")
async def get_batch(batch_id: str, request: Request) -> Response:
    return await gateway_of(request).batches.retrieve(request, batch_id)


@router.post("/v1/messages/batches/{batch_id}/cancel", summary="Cancel a Message Batch")
async def cancel_batch(batch_id: str, request: Request) -> Response:
    return await gateway_of(request).batches.cancel(request, batch_id)


@router.delete("/v1/messages/batches/{batch_id}", summary="Delete an ended Message Batch")
async def delete_batch(batch_id: str, request: Request) -> Response:
    return await gateway_of(request).batches.delete(request, batch_id)


@router.get("/v1/messages/batches/{batch_id}/results",
            summary="A Message Batch's results (JSONL)")
async def batch_results(batch_id: str, request: Request) -> Response:
    return await gateway_of(request).batches.results(request, batch_id)
