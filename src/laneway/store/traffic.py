"""The gateway's traffic, mixed into the store: one row per answered request, and the
sums a dashboard and a key's budget need.

The relay records requests in groups (:meth:`TrafficLedger.record_requests`, one
transaction each). Times are wall-clock seconds (``time.time()``), as elsewhere in
the ledger. A request whose model has no known price has no cost (NULL): it is counted
in ``unpriced``, never as free.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Engine,
    Float,
    Integer,
    case,
    cast,
    func,
    literal_column,
    select,
    update,
)

from laneway.store import schema as S

_R = S.gateway_requests.c
_K = S.gateway_keys.c

#: The name traffic without a key (an anonymous client on loopback) is listed under.
LOCAL = "local"


@dataclass(frozen=True, slots=True)
class TrafficRecord:
    """One request the gateway answered."""

    #: The client key's id; None for an anonymous client on loopback.
    key_id: str | None
    model: str
    #: ``interactive`` or ``background``.
    lane: str
    #: The HTTP status the client was answered with.
    status: int
    streamed: bool
    input_tokens: int
    output_tokens: int
    cache_creation_input_tokens: int
    cache_read_input_tokens: int
    #: None when the model's price is not known.
    cost_usd: float | None
    #: Seconds the request waited for the governor before it was sent.
    queued_s: float
    #: Seconds from arrival to the first streamed content; None if there was none.
    ttft_s: float | None
    duration_s: float
    #: Upstream errors absorbed by retries before this answer.
    upstream_errors: int
    #: When it arrived (``time.time()``).
    started_at: float
    #: The model that answered (None when nothing did), and what the usage would have
    #: cost on ``model`` when another answered.
    answered_model: str | None = None
    asked_cost_usd: float | None = None


def error_count() -> Any:
    return func.sum(case((_R.status >= 400, 1), else_=0))


def token_sums() -> list[Any]:
    return [func.coalesce(func.sum(col), 0).label(col.name) for col in (
        _R.input_tokens, _R.output_tokens, _R.cache_creation_input_tokens,
        _R.cache_read_input_tokens)]


def row_sums() -> list[Any]:
    """What a row of the per key, model and lane tables sums, after its ``requests``
    (:func:`by_key` reads them): errors, unpriced, tokens, cost, times, answers."""
    return [
        error_count().label("errors"),
        func.sum(case((_R.cost_usd.is_(None), 1), else_=0)).label("unpriced"),
        *token_sums(), func.coalesce(func.sum(_R.cost_usd), 0.0).label("cost_usd"),
        func.avg(_R.queued_s).label("queued_s_mean"),
        func.max(_R.queued_s).label("queued_s_max"),
        func.avg(_R.ttft_s).label("ttft_s_mean"),
        func.avg(_R.duration_s).label("duration_s_mean"),
        func.coalesce(func.sum(_R.upstream_errors), 0).label("upstream_errors"),
        func.max(_R.answered_model).label("answered_model"),
        func.sum(_R.asked_cost_usd).label("asked_cost_usd"),
    ]


class TrafficLedger:
    """Gateway requests and their sums; mixed into :class:`laneway.store.ledger.Store`."""

    engine: Engine

    def record_requests(self, records: Sequence[TrafficRecord]) -> None:
        """Add ``records``, all in one transaction."""
        if not records:
            return
        spent: dict[str, float] = {}
        for r in records:
            if r.key_id is not None:
                spent[r.key_id] = spent.get(r.key_id, 0.0) + (r.cost_usd or 0.0)
        with self.engine.begin() as conn:
            conn.execute(S.gateway_requests.insert(), [asdict(r) for r in records])
            for key_id, usd in spent.items():
                conn.execute(update(S.gateway_keys).where(_K.id == key_id).values(
                    spent_usd=_K.spent_usd + usd))

    def spent_usd(self, key_id: str) -> float:
        """What the key's settled requests cost, in USD (its ledger row's sum)."""
        q = select(_K.spent_usd).where(_K.id == key_id)
        with self.engine.connect() as conn:
            return float(conn.scalar(q) or 0.0)

    def spent_by_key(self) -> dict[str, float]:
        """:meth:`spent_usd` of every key, by key id."""
        q = select(_K.id, _K.spent_usd)
        with self.engine.connect() as conn:
            return {str(k): float(c or 0.0) for k, c in conn.execute(q)}

    def traffic_by_key(self, since: float | None = None) -> list[dict[str, Any]]:
        """Requests since ``since`` (all if None), summed by key, model and lane.

        Each dict: ``key`` (the key's name, or ``"local"``), ``key_id``, ``model``,
        ``lane``, ``requests``, ``errors`` (answered 400 or more), ``unpriced``
        (requests of unknown price), the four token sums (``input_tokens``,
        ``output_tokens``, ``cache_creation_input_tokens``, ``cache_read_input_tokens``),
        ``cost_usd`` (known prices only), ``queued_s_mean``, ``queued_s_max``,
        ``ttft_s_mean`` (None if nothing streamed content), ``duration_s_mean`` and
        ``upstream_errors``. Sorted by key, model and lane.
        """
        name = func.coalesce(_K.name, LOCAL).label("key")
        q = (select(
            name, _R.key_id, _R.model, _R.lane, func.count().label("requests"),
            *row_sums())
            .select_from(S.gateway_requests.outerjoin(S.gateway_keys, _K.id == _R.key_id))
            .where(_R.state != "reserved")  # in flight: the live pages show those
            .group_by(_K.name, _R.key_id, _R.model, _R.lane)
            .order_by(name, _R.model, _R.lane))
        if since is not None:
            q = q.where(_R.started_at >= since)
        with self.engine.connect() as conn:
            return [by_key(r) for r in conn.execute(q).mappings()]

    def traffic_timeline(self, since: float, bucket_s: int = 10) -> list[dict[str, Any]]:
        """Requests since ``since`` in buckets of ``bucket_s`` seconds, oldest first.

        Each dict: ``at`` (the bucket's start, a multiple of ``bucket_s``),
        ``requests``, ``errors``, ``input_tokens``, ``output_tokens`` and ``cost_usd``.
        A bucket with no request is left out.
        """
        if bucket_s < 1:
            raise ValueError(f"bucket_s must be 1 or more, not {bucket_s!r}")
        # Inline, not bound: PostgreSQL must see the same expression in SELECT and GROUP BY.
        width: ColumnElement[int] = literal_column(str(int(bucket_s)))
        ratio = _R.started_at / width
        # PostgreSQL's CAST to integer rounds; SQLite's truncates (floor, for times > 0).
        index = (func.floor(ratio) if self.engine.dialect.name == "postgresql"
                 else cast(ratio, Integer))
        bucket = cast(index * width, Float).label("at")
        q = (select(bucket, func.count().label("requests"), error_count().label("errors"),
                    func.coalesce(func.sum(_R.input_tokens), 0).label("input_tokens"),
                    func.coalesce(func.sum(_R.output_tokens), 0).label("output_tokens"),
                    func.coalesce(func.sum(_R.cost_usd), 0.0).label("cost_usd"))
             .where(_R.started_at >= since, _R.state != "reserved")
             .group_by(bucket).order_by(bucket))
        with self.engine.connect() as conn:
            return [{"at": float(r["at"]), "requests": int(r["requests"]),
                     "errors": int(r["errors"] or 0), "input_tokens": int(r["input_tokens"]),
                     "output_tokens": int(r["output_tokens"]),
                     "cost_usd": float(r["cost_usd"])} for r in conn.execute(q).mappings()]


def by_key(r: Any) -> dict[str, Any]:
    ints = ("requests", "errors", "unpriced", "input_tokens", "output_tokens",
            "cache_creation_input_tokens", "cache_read_input_tokens", "upstream_errors")
    floats = ("cost_usd", "queued_s_mean", "queued_s_max", "duration_s_mean")
    out: dict[str, Any] = {"key": r["key"], "key_id": r["key_id"], "model": r["model"],
                           "lane": r["lane"]}
    out.update({k: int(r[k] or 0) for k in ints})
    out.update({k: float(r[k] or 0.0) for k in floats})
    out["ttft_s_mean"] = None if r["ttft_s_mean"] is None else float(r["ttft_s_mean"])
    out["answered_model"] = r["answered_model"]
    out["asked_cost_usd"] = None if r["asked_cost_usd"] is None else float(r["asked_cost_usd"])
    return out
