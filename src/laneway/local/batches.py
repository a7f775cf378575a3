"""Message Batches in the local API: kept in memory, processed in the background.

A batch's requests run through the same engine as ``/v1/messages`` (a few at a time),
without the per-minute rate limits, as the API's batches are. ``time_scale`` shrinks
the 24 h expiry (0.0001 makes it 8.6 s) so expiry can be tested; ``min_s`` keeps a
batch in progress at least that long, so clients can be tested while one is running.
As the API documents, the counts other than ``processing`` stay 0 until the batch ends.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from dataclasses import dataclass, field
from typing import Any

from laneway.local.cache import PromptCache
from laneway.local.engines.base import Engine
from laneway.local.faults import FaultPlan
from laneway.local.generation import check_request, complete
from laneway.local.models import capabilities_of
from laneway.local.validation import validate_message, with_tool_call
from laneway.wire.batches import errored, result_line, succeeded
from laneway.wire.errors import APIError
from laneway.wire.ids import new_id, rfc3339

DAY_S = 24 * 3600.0
#: Faults of :class:`FaultPlan` that a batch request can meet, as the errors it gets.
_RESULT_FAULTS = {"529": ("overloaded_error", "Overloaded"),
                  "500": ("api_error", "Internal server error")}


@dataclass
class Batch:
    id: str
    requests: list[tuple[str, Any]]
    created_at: float
    expires_at: float
    results: dict[str, dict[str, Any]] = field(default_factory=dict)
    order: list[str] = field(default_factory=list)
    ended_at: float | None = None
    cancel_initiated_at: float | None = None
    archived_at: float | None = None
    task: asyncio.Task[None] | None = None

    @property
    def status(self) -> str:
        if self.ended_at is not None:
            return "ended"
        return "canceling" if self.cancel_initiated_at is not None else "in_progress"

    def counts(self) -> dict[str, int]:
        counts = {"processing": 0, "succeeded": 0, "errored": 0, "canceled": 0, "expired": 0}
        if self.ended_at is None:
            counts["processing"] = len(self.requests)
            return counts
        for result in self.results.values():
            counts[result["type"]] += 1
        return counts

    def put(self, custom_id: str, result: dict[str, Any]) -> None:
        if custom_id not in self.results:
            self.results[custom_id] = result
            self.order.append(custom_id)


class BatchStore:
    def __init__(
        self, engine: Engine, *, time_scale: float = 1.0, concurrency: int = 4,
        min_s: float = 0.0, seed: int = 0, faults: FaultPlan | None = None,
        cache: PromptCache | None = None,
    ) -> None:
        self.engine = engine
        #: Batch requests read and write the server's prompt cache too.
        self.cache = cache or PromptCache()
        self.time_scale = time_scale
        self.concurrency = concurrency
        self.min_s = min_s
        self.seed = seed
        #: Test bed: requests drawn a ``529`` or ``500`` fault from this plan come back
        #: ``errored`` with ``overloaded_error`` / ``api_error`` (retryable types), as the
        #: API's batches sometimes return. Off unless set (tests set it on ``api.batches``).
        self.faults = faults
        self.batches: dict[str, Batch] = {}

    # -- the API's objects -------------------------------------------------------------
    def as_json(self, batch: Batch, base_url: str) -> dict[str, Any]:
        return {
            "id": batch.id,
            "type": "message_batch",
            "processing_status": batch.status,
            "request_counts": batch.counts(),
            "created_at": rfc3339(batch.created_at),
            "expires_at": rfc3339(batch.expires_at),
            "ended_at": rfc3339(batch.ended_at),
            "archived_at": rfc3339(batch.archived_at),
            "cancel_initiated_at": rfc3339(batch.cancel_initiated_at),
            "results_url": (
                f"{base_url}/v1/messages/batches/{batch.id}/results"
                if batch.ended_at is not None else None
            ),
        }

    def get(self, batch_id: str) -> Batch:
        batch = self.batches.get(batch_id)
        if batch is None:
            raise APIError("not_found_error", f"message batch {batch_id!r} not found")
        return batch

    # -- calls ---------------------------------------------------------------------------
    def create(self, requests: list[tuple[str, Any]]) -> Batch:
        now = time.time()
        batch = Batch(
            id=new_id("msgbatch"), requests=requests, created_at=now,
            expires_at=now + DAY_S * self.time_scale,
        )
        self.batches[batch.id] = batch
        batch.task = asyncio.get_running_loop().create_task(self._process(batch))
        return batch

    def listing(self, *, limit: int, after_id: str | None, before_id: str | None
                ) -> tuple[list[Batch], bool]:
        # The dict keeps creation order; two batches created within the clock's resolution
        # would tie on ``created_at``, so that is not the key.
        newest_first = list(reversed(self.batches.values()))
        ids = [b.id for b in newest_first]
        if after_id is not None:
            if after_id not in ids:
                raise APIError("invalid_request_error", f"after_id: unknown batch {after_id!r}")
            rest = newest_first[ids.index(after_id) + 1:]
            return rest[:limit], len(rest) > limit
        if before_id is not None:
            if before_id not in ids:
                raise APIError("invalid_request_error", f"before_id: unknown batch {before_id!r}")
            rest = newest_first[: ids.index(before_id)]
            return rest[-limit:], len(rest) > limit
        return newest_first[:limit], len(newest_first) > limit

    def cancel(self, batch_id: str) -> Batch:
        batch = self.get(batch_id)
        if batch.ended_at is None and batch.cancel_initiated_at is None:
            batch.cancel_initiated_at = time.time()
        return batch

    def delete(self, batch_id: str) -> None:
        batch = self.get(batch_id)
        if batch.ended_at is None:
            raise APIError(
                "invalid_request_error",
                f"message batch {batch_id!r} is still {batch.status}: cancel it and wait "
                "for it to end before deleting it",
            )
        del self.batches[batch_id]

    def results_jsonl(self, batch_id: str) -> bytes:
        batch = self.get(batch_id)
        if batch.ended_at is None:
            raise APIError("not_found_error",
                           f"message batch {batch_id!r} has not ended: no results yet")
        lines = [result_line(cid, batch.results[cid]) for cid in batch.order]
        return ("\n".join(lines) + "\n").encode() if lines else b""

    async def aclose(self) -> None:
        tasks = [b.task for b in self.batches.values() if b.task is not None]
        for t in tasks:
            t.cancel()
        for t in tasks:
            with contextlib.suppress(BaseException):
                await t

    # -- processing ----------------------------------------------------------------------
    async def _one(self, batch: Batch, custom_id: str, params: Any) -> None:
        if batch.cancel_initiated_at is not None:
            batch.put(custom_id, {"type": "canceled"})
            return
        fault = self.faults.draw() if self.faults is not None else None
        if fault is not None and fault.kind in _RESULT_FAULTS:
            error_type, text = _RESULT_FAULTS[fault.kind]
            batch.put(custom_id, errored(error_type, text, new_id("req")))
            return
        try:
            parsed = with_tool_call(validate_message(
                params, in_batch=True, capabilities=capabilities_of(self.engine)), self.engine)
            total_tokens = self.engine.count_tokens(parsed.prompt)
            check_request(self.engine, parsed, total_tokens)
            plan = self.cache.plan(parsed.model, parsed.breakpoints, total_tokens,
                                   self.engine.count_tokens)
            self.cache.commit(plan)
            message, _ = await complete(
                self.engine, parsed, msg_id=new_id("msg"), input_tokens=plan.usage.input_tokens,
                seed=self.seed, service_tier="batch", cache=plan.usage,
            )
        except APIError as err:
            batch.put(custom_id, errored(err.error_type, err.message, new_id("req")))
            return
        batch.put(custom_id, succeeded(message))

    async def _process(self, batch: Batch) -> None:
        queue: asyncio.Queue[tuple[str, Any]] = asyncio.Queue()
        for item in batch.requests:
            queue.put_nowait(item)

        async def worker() -> None:
            while not queue.empty():
                custom_id, params = queue.get_nowait()
                await self._one(batch, custom_id, params)
                # An engine without latency never suspends: yield to the event loop so a
                # large batch cannot starve other requests (or miss its own cancel).
                await asyncio.sleep(0)

        started = time.monotonic()
        deadline_s = batch.expires_at - batch.created_at
        workers = [asyncio.create_task(worker()) for _ in range(self.concurrency)]
        try:
            _done, pending = await asyncio.wait(workers, timeout=deadline_s)
            for t in pending:  # the batch expired: whatever is unfinished expires
                t.cancel()
            for t in pending:
                with contextlib.suppress(asyncio.CancelledError):
                    await t
            wait_s = self.min_s - (time.monotonic() - started)
            while wait_s > 0 and batch.cancel_initiated_at is None:
                await asyncio.sleep(min(wait_s, 0.05))
                wait_s = self.min_s - (time.monotonic() - started)
        finally:
            expired = time.time() >= batch.expires_at
            for custom_id, _ in batch.requests:
                if custom_id not in batch.results:
                    if batch.cancel_initiated_at is not None and not expired:
                        batch.put(custom_id, {"type": "canceled"})
                    else:
                        batch.put(custom_id, {"type": "expired"})
            batch.ended_at = time.time()
