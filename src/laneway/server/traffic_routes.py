"""The gateway's traffic, seen live: ``GET /v1/laneway/traffic`` (the Traffic page reads
it every second) and ``GET /metrics`` (Prometheus). Both go through the server's token
check like every other route."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import PlainTextResponse, Response

from laneway.server.gateway.metrics import GatewayMetrics
from laneway.server.gateway.service import Gateway, gateway_of
from laneway.server.models import ErrorBody, TrafficReport

router = APIRouter(tags=["traffic"])

_UNAUTHORIZED: dict[int | str, dict[str, Any]] = {
    401: {"model": ErrorBody, "description": "A token is required."}}


def metrics_for(gateway: Gateway) -> GatewayMetrics:
    """The app's Prometheus metrics, fed by ``gateway``."""
    metrics = GatewayMetrics(lambda: gateway.agent.governor)
    gateway.observers.append(metrics.observe)
    gateway.pipeline.refused_unknown.append(metrics.refused)
    return metrics


@router.get("/v1/laneway/traffic", response_model=TrafficReport, responses=_UNAUTHORIZED,
            summary="The gateway's live traffic")
async def traffic(request: Request) -> TrafficReport:
    """Per client key, model and lane since the server started; a timeline of the last
    15 minutes (requests, errors, tokens, rate-limit use); the queue per lane and the
    governor's limits, read now. In memory: the ledger keeps every request for good."""
    return TrafficReport.model_validate(gateway_of(request).stats.report())


@router.get("/metrics", response_class=PlainTextResponse, summary="Prometheus metrics",
            responses=_UNAUTHORIZED)
async def metrics(request: Request) -> Response:
    """The gateway's counters (requests, tokens, cost, upstream errors absorbed, by
    client key, model and lane), histograms (time queued, time to first token, by
    lane) and gauges (queue depth and requests in flight per lane, the fill of each
    rate-limit bucket), in Prometheus's text format."""
    found: GatewayMetrics = request.app.state.metrics
    return Response(found.render(), media_type=found.content_type)
