"""The Message Batches API's objects, as the gateway answers them.

The batch object has the API's fields and nothing more (the local API's
:meth:`~laneway.local.batches.BatchStore.as_json` is the reference): counts other than
``processing`` stay 0 until the batch ends, ``results_url`` is null until then and
absolute after, on the gateway's public address: ``laneway serve --public-url``, else
the address the connection arrived at (the socket's, never a ``Host`` header's, which a
proxy or a client could make anything).

The requests of a create are split here too (:func:`split_requests`): those whose
``params`` laneway can send become the run's jobs; the rest are refused at once with the
``errored`` result the API would give them later (the API checks params as the batch
runs, not at create).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

from laneway.errors import InputError
from laneway.jobs.formats import MAX_NESTING, JobDefaults, check_params, parse_line
from laneway.store import Counts
from laneway.store.gateway_batches import GatewayBatch
from laneway.store.statuses import JobStatus
from laneway.wire.batches import errored, parse_batch_requests, result_line
from laneway.wire.ids import new_id, rfc3339

#: How long a batch may run before what is unfinished expires (the API's 24 h).
DAY_S = 24 * 3600.0
_ENDED_COUNTS = (("succeeded", JobStatus.SUCCEEDED), ("errored", JobStatus.ERRORED),
                 ("canceled", JobStatus.CANCELED), ("expired", JobStatus.EXPIRED))


def request_counts(batch: GatewayBatch, counts: Counts | None) -> dict[str, int]:
    """The API's ``request_counts``: all ``processing`` until the batch ends."""
    out = {"processing": 0, "succeeded": 0, "errored": 0, "canceled": 0, "expired": 0}
    if batch.ended_at is None:
        out["processing"] = batch.request_count
        return out
    if counts is not None:
        for name, status in _ENDED_COUNTS:
            out[name] = counts[status]
    out["errored"] += len(batch.rejected)
    return out


def batch_json(batch: GatewayBatch, counts: Counts | None, base_url: str) -> dict[str, Any]:
    """The batch object (``counts``: the run's, read only once the batch has ended)."""
    return {
        "id": batch.id,
        "type": "message_batch",
        "processing_status": batch.status,
        "request_counts": request_counts(batch, counts),
        "created_at": rfc3339(batch.created_at),
        "expires_at": rfc3339(batch.expires_at),
        "ended_at": rfc3339(batch.ended_at),
        "archived_at": None,
        "cancel_initiated_at": rfc3339(batch.cancel_initiated_at),
        "results_url": (f"{base_url}/v1/messages/batches/{batch.id}/results"
                        if batch.ended_at is not None else None),
    }


def result_lines(rows: Iterable[tuple[str, dict[str, Any]]]) -> Iterator[str]:
    """One JSONL line per result, as the API writes them."""
    for custom_id, result in rows:
        yield result_line(custom_id, result)


def _refusal(line: str, params: Any) -> str | None:
    """Why laneway cannot send ``params`` as a request, or None if it can: as the
    run's ingest would read ``line``, with nothing filled in for what it lacks."""
    if not isinstance(params, dict):
        return "params: Input should be a valid dictionary"

    def err(reason: str, field: str) -> InputError:
        return InputError(reason, field=field)

    try:
        check_params(params, err)
        if line.count("[") + line.count("{") > MAX_NESTING:  # else it reads as it is
            parse_line(line, line=1, path=None, defaults=JobDefaults())
    except InputError as exc:
        return str(exc)
    return None


@dataclass
class Split:
    """A create's requests: the run's input lines and their params, and the results of
    those refused."""

    lines: list[str] = field(default_factory=list)
    params: list[dict[str, Any]] = field(default_factory=list)
    refused: list[tuple[str, dict[str, Any]]] = field(default_factory=list)


def split_requests(requests: list[tuple[str, Any]]) -> Split:
    """The run's jobs (``{"custom_id", "params"}`` lines) and the refused requests."""
    out = Split()
    for custom_id, params in requests:
        line = json.dumps({"custom_id": custom_id, "params": params}, ensure_ascii=False)
        why = _refusal(line, params)
        if why is None:
            out.lines.append(line)
            out.params.append(params)
        else:
            out.refused.append(
                (custom_id, errored("invalid_request_error", why, new_id("req"))))
    return out


def read_create(data: dict[str, Any]) -> tuple[int, Split]:
    """A create's body (parsed), checked as the API checks it: how many requests, split."""
    requests = parse_batch_requests(data)
    return len(requests), split_requests(requests)
