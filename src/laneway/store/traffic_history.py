"""The gateway's traffic over a window, from the ledger (so it survives restarts and
counts every process), mixed into the store: what the Traffic page's history shows.

Everything comes from ``gateway_requests`` (see :mod:`laneway.store.traffic`), the rows
budgets are kept on: one per answered request, and one per Message Batch made through
the gateway (``batch_id`` set; reserved when the batch is created, settled at its run's
cost when it ends). Here a batch's row is listed in the lane ``batch`` and counts the
batch's requests; rows still reserved (in flight) are left to the live view.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import Engine, case, func, select

from laneway.store import schema as S
from laneway.store.traffic import LOCAL, TrafficLedger, by_key, row_sums

_R = S.gateway_requests.c
_G = S.gateway_batches.c
_K = S.gateway_keys.c

#: The lane a gateway Message Batch's row is listed in.
BATCH_LANE = "batch"


class TrafficHistory(TrafficLedger):
    """The gateway's requests and batches over a window; mixed into the store."""

    engine: Engine

    def traffic_by_key_and_lane(self, since: float) -> list[dict[str, Any]]:
        """:meth:`traffic_by_key` since ``since``, with each Message Batch's row in the
        lane ``batch``, counting the batch's requests (its own answers were all 200:
        a batch's errored requests are in its results, not here)."""
        name = func.coalesce(_K.name, LOCAL).label("key")
        lane = case((_R.batch_id.is_not(None), BATCH_LANE), else_=_R.lane).label("lane")
        count = case((_R.batch_id.is_(None), 1), else_=func.coalesce(_G.request_count, 1))
        q = (select(
            name, _R.key_id, _R.model, lane, func.sum(count).label("requests"),
            *row_sums())
            .select_from(S.gateway_requests
                         .outerjoin(S.gateway_keys, _K.id == _R.key_id)
                         .outerjoin(S.gateway_batches, _G.id == _R.batch_id))
            .where(_R.started_at >= since, _R.state != "reserved")
            .group_by(_K.name, _R.key_id, _R.model, lane)
            .order_by(name, _R.model, lane))
        with self.engine.connect() as conn:
            return [by_key(r) for r in conn.execute(q).mappings()]

    def traffic_history(self, since: float, bucket_s: int) -> dict[str, Any]:
        """Since ``since``: ``keys``, rows by key, model and lane
        (:meth:`traffic_by_key_and_lane`), and ``timeline``
        (:meth:`traffic_timeline` in buckets of ``bucket_s``)."""
        return {"keys": self.traffic_by_key_and_lane(since),
                "timeline": self.traffic_timeline(since, bucket_s)}
