"""The gateway's traffic over a window, from the ledger (so it survives restarts), mixed
into the store: what the Traffic page's history shows.

Requests come from ``gateway_requests`` (one row per answered request, see
:mod:`laneway.store.traffic`). Message Batches made through the gateway are runs: their
requests are the jobs of those runs, counted when they finished, under the key that made
the batch, in the lane ``batch``.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import Engine, case, func, or_, select

from laneway.store import schema as S
from laneway.store.statuses import JobStatus
from laneway.store.traffic import LOCAL, TrafficLedger

_J = S.jobs.c
_G = S.gateway_batches.c
_K = S.gateway_keys.c

#: The lane a gateway Message Batch's requests are listed in.
BATCH_LANE = "batch"
_OUTCOMES = (JobStatus.SUCCEEDED, JobStatus.ERRORED, JobStatus.EXPIRED)


class TrafficHistory(TrafficLedger):
    """Requests and batch jobs over a window; mixed into the store."""

    engine: Engine

    def batch_traffic(self, since: float) -> list[dict[str, Any]]:
        """The gateway's Message Batches' requests that finished since ``since``, summed by
        key and model, in the shape of :meth:`traffic_by_key` (lane ``batch``; nothing
        was queued or streamed, so those figures are None)."""
        name = func.coalesce(_K.name, LOCAL).label("key")
        q = (select(
            name, _G.key_id, _J.model, func.count().label("requests"),
            func.sum(case((_J.status != JobStatus.SUCCEEDED, 1), else_=0)).label("errors"),
            func.sum(case((_J.status == JobStatus.SUCCEEDED, case(
                (_J.priced.is_(False), 1), else_=0)), else_=0)).label("unpriced"),
            *[func.coalesce(func.sum(c), 0).label(c.name) for c in (
                _J.input_tokens, _J.output_tokens, _J.cache_creation_input_tokens,
                _J.cache_read_input_tokens)],
            func.coalesce(func.sum(_J.cost_usd), 0.0).label("cost_usd"))
            .select_from(S.gateway_batches.join(S.jobs, _J.run_id == _G.id)
                         .outerjoin(S.gateway_keys, _K.id == _G.key_id))
            # A batch's jobs end before it does: older batches are not read at all.
            .where(or_(_G.ended_at.is_(None), _G.ended_at >= since),
                   _J.finished_at >= since, _J.status.in_(_OUTCOMES))
            .group_by(_K.name, _G.key_id, _J.model).order_by(name, _J.model))
        with self.engine.connect() as conn:
            rows = conn.execute(q).mappings().all()
        out = []
        for r in rows:
            row: dict[str, Any] = {"key": r["key"], "key_id": r["key_id"], "model": r["model"],
                                   "lane": BATCH_LANE}
            for k in ("requests", "errors", "unpriced", "input_tokens", "output_tokens",
                      "cache_creation_input_tokens", "cache_read_input_tokens"):
                row[k] = int(r[k] or 0)
            row.update(cost_usd=float(r["cost_usd"] or 0.0), queued_s_mean=None,
                       queued_s_max=None, ttft_s_mean=None, duration_s_mean=None,
                       upstream_errors=0)
            out.append(row)
        return out

    def traffic_history(self, since: float, bucket_s: int) -> dict[str, Any]:
        """Requests (``gateway_requests``) and batch jobs since ``since``: ``keys``, rows
        by key, model and lane (:meth:`traffic_by_key` and :meth:`batch_traffic`, batch
        rows last within a key and model), and ``timeline``
        (:meth:`traffic_timeline` in buckets of ``bucket_s``)."""
        rows = self.traffic_by_key(since) + self.batch_traffic(since)
        rows.sort(key=lambda r: (r["key"], r["model"], r["lane"] == BATCH_LANE, r["lane"]))
        return {"keys": rows, "timeline": self.traffic_timeline(since, bucket_s)}
