"""The Anthropic API's routes on ``laneway serve`` (point ``ANTHROPIC_BASE_URL`` here)."""

from __future__ import annotations

import logging
from collections.abc import Callable, Coroutine
from typing import Any

from fastapi import APIRouter, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import Response
from fastapi.routing import APIRoute
from starlette.types import Receive, Scope, Send

from laneway.errors import LanewayError
from laneway.server.errors import headers_of, message_of, status_of, type_of
from laneway.server.gateway.service import gateway_of
from laneway.server.origin import cross_site, refusal
from laneway.wire.errors import api_error

_log = logging.getLogger(__name__)


class ApiRoute(APIRoute):
    """A route of the API's that answers its failures as the API does: a query the
    framework cannot read (``?limit=abc``) is a 400 ``invalid_request_error`` (not
    FastAPI's 422), and a failure of laneway's own is the API's error body, with its
    request id, whatever raised it."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def answer(request: Request) -> Response:
            try:
                return await handler(request)
            except RequestValidationError as exc:
                problems = "; ".join(
                    f"{'.'.join(str(p) for p in e.get('loc', ())[1:]) or 'request'}: "
                    f"{e.get('msg', '')}" for e in exc.errors())
                return api_error(400, "invalid_request_error", problems or "invalid request")
            except Exception as exc:
                return _failed(request, exc)

        return answer


def _failed(request: Request, exc: Exception) -> Response:
    """A failure of laneway's own, as the API's error body."""
    if not isinstance(exc, LanewayError):
        _log.exception("%s %s failed", request.method, request.url.path)
    return api_error(status_of(exc) if isinstance(exc, LanewayError) else 500,
                     type_of(exc), message_of(exc), headers=headers_of(exc))


class DirectMessages:
    """``POST /v1/messages`` answered outside the app's middleware and router (the
    app calls it first, :class:`laneway.server.app.ServeApp`): of the middleware only
    the cross-site rule applies to it (:func:`laneway.server.origin.refusal`; the
    token and body limits are the gateway's own chain's), and the route's own wrapper
    (:class:`ApiRoute`) answers a failure. Saves the layers' work on every request and
    on every chunk of a stream (each wraps ``send``)."""

    def __init__(self, token: str | None) -> None:
        self.token = token

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        why = refusal(scope, token=self.token)
        if why is not None:
            await cross_site(why)(scope, receive, send)
            return
        request = Request(scope, receive)
        try:
            response = await gateway_of(request).messages(request)
        except Exception as exc:
            response = _failed(request, exc)
        await response(scope, receive, send)


router = APIRouter(tags=["Anthropic API (gateway)"], route_class=ApiRoute)


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
