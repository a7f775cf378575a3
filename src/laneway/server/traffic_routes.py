"""The gateway's traffic: live (``GET /v1/laneway/traffic``, read every second by the
Traffic page), over the last hour, day or week from the ledger (``GET
/v1/laneway/traffic/history``: it survives restarts and sees every process), and
``GET /metrics`` (Prometheus). All go through the server's token check like every other
route."""

from __future__ import annotations

import time
from typing import Any, Literal

from fastapi import APIRouter, Query, Request
from fastapi.responses import PlainTextResponse, Response

from laneway.server.gateway.metrics import GatewayMetrics
from laneway.server.gateway.service import Gateway, gateway_of
from laneway.server.models import ErrorBody, Spend, TrafficHistoryReport, TrafficReport
from laneway.store.traffic_history import BATCH_LANE

router = APIRouter(tags=["traffic"])

#: Each window of the history: how far back, and its buckets' width (seconds).
WINDOWS: dict[str, tuple[int, int]] = {"hour": (3600, 60), "day": (86400, 1800),
                                       "week": (7 * 86400, 3 * 3600)}

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


def spend(rows: list[dict[str, Any]], by: str) -> list[Spend]:
    """Sum history rows by ``key`` or ``model``, the biggest spender first."""
    out: dict[str, Spend] = {}
    for r in rows:
        s = out.get(r[by]) or Spend(name=r[by], requests=0, batch_requests=0, cost_usd=0.0,
                                    batch_cost_usd=0.0, unpriced=0)
        batch = r["lane"] == BATCH_LANE
        s.requests += r["requests"]
        s.cost_usd += r["cost_usd"]
        s.unpriced += r["unpriced"]
        s.batch_requests += r["requests"] if batch else 0
        s.batch_cost_usd += r["cost_usd"] if batch else 0.0
        out[r[by]] = s
    for s in out.values():
        s.cost_usd, s.batch_cost_usd = round(s.cost_usd, 8), round(s.batch_cost_usd, 8)
    return sorted(out.values(), key=lambda s: (-s.cost_usd, -s.requests, s.name))


def _every_bucket(timeline: list[dict[str, Any]], since: float, now: float,
                  width: int) -> list[dict[str, Any]]:
    found = {int(b["at"] // width): b for b in timeline}
    out = []
    for index in range(int(since // width), int(now // width) + 1):
        b = found.get(index)
        out.append({"t": float(index * width),
                    **({k: b[k] for k in ("requests", "errors", "input_tokens",
                                          "output_tokens", "cost_usd")} if b else
                       {"requests": 0, "errors": 0, "input_tokens": 0, "output_tokens": 0,
                        "cost_usd": 0.0})})
    return out


@router.get("/v1/laneway/traffic/history", response_model=TrafficHistoryReport,
            responses=_UNAUTHORIZED, summary="The gateway's traffic over a window")
async def traffic_history(
    request: Request,
    window: Literal["hour", "day", "week"] = Query("hour", description="How far back."),
) -> TrafficHistoryReport:
    """Per key, model and lane (Message Batches' requests in lane ``batch``), what each
    key and each model spent, and a timeline of the requests, over the last hour, day
    or week: read from the ledger, so every process's traffic, across restarts."""
    agent = gateway_of(request).agent
    span_s, width = WINDOWS[window]
    now = time.time()
    since = now - span_s
    found = await agent.astore.call(agent.store.traffic_history, since, width)
    rows = found["keys"]
    return TrafficHistoryReport.model_validate({
        "window": window, "since": since, "at": now, "bucket_s": width, "keys": rows,
        "spend_by_key": spend(rows, "key"), "spend_by_model": spend(rows, "model"),
        "timeline": _every_bucket(found["timeline"], since, now, width)})


@router.get("/metrics", response_class=PlainTextResponse, summary="Prometheus metrics",
            responses=_UNAUTHORIZED)
async def metrics(request: Request) -> Response:
    """The gateway's counters (requests, tokens, cost, upstream errors absorbed, by
    client key, model and lane), histograms (time queued, time to first token, by
    lane) and gauges (queue depth and requests in flight per lane, the fill of each
    rate-limit bucket), in Prometheus's text format."""
    found: GatewayMetrics = request.app.state.metrics
    return Response(found.render(), media_type=found.content_type)
