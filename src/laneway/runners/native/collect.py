"""Filing an ended batch's results: each job once, in groups, as the results stream in.

What each result becomes:

- ``succeeded``: final, with its usage and its cost at the batch price (the only
  results that are billed, so cost is counted from them and nowhere else);
- ``errored`` with a retryable type (``api_error``, ``overloaded_error``,
  ``rate_limit_error``, ``timeout_error``): sent again while the job has attempts left;
  any other error is the request's own fault and final;
- ``expired`` / ``canceled``: sent again while attempts are left (in the next batch, or
  realtime if the deadline fallback takes over); final when the run was canceled.

A job that is already final (another worker or an earlier pass filed it) is skipped by
the ledger, so reading a results file twice changes nothing.
"""

from __future__ import annotations

from typing import Any

from laneway.cost.answered import price_answer
from laneway.cost.prices import Usage
from laneway.errors import ProviderError
from laneway.provider.batches import BatchInfo
from laneway.runners.native.state import NativeState
from laneway.runners.native.wire import parse_custom_id
from laneway.store import Finished
from laneway.store.batches import BatchRow, Member
from laneway.store.statuses import JobStatus
from laneway.wire.status import type_outcome


class Collector:
    def __init__(self, state: NativeState) -> None:
        self.state = state

    async def collect(self, row: BatchRow, info: BatchInfo, *, canceled: bool,
                      requeue_all: bool = False) -> bool:
        """File the results of the ended batch ``row``; False if they could not all be
        read (the rest is read on the next poll). ``canceled``: the run was canceled, so
        nothing is sent again. ``requeue_all``: the deadline fallback, so whatever did
        not finish goes back whatever its attempts."""
        r = self.state
        assert row.provider_batch_id is not None
        waiting = await r.astore.batch_members(r.run_id, row.id)
        worst = await self._worst(row)
        items: list[Finished] = []
        again: list[int] = []
        tally: dict[str, int] = {}
        complete = True
        try:
            async for line in r.batches.results(row.provider_batch_id):
                parsed = parse_custom_id(str(line.get("custom_id", "")))
                if parsed is None or parsed[1] != row.id:
                    continue
                member = waiting.pop(parsed[0], None)
                if member is None:
                    continue
                result: dict[str, Any] = line.get("result") or {}
                kind = str(result.get("type"))
                tally[kind] = tally.get(kind, 0) + 1
                item = self._file(member, result, canceled=canceled, requeue_all=requeue_all)
                if item is None:
                    again.append(member.seq)
                else:
                    items.append(item)
                if len(items) + len(again) >= r.options.result_group:
                    await self._flush(row, items, again, worst)
                    items, again = [], []
        except ProviderError as err:
            complete = False
            r.notice(f"batch {row.id}: reading its results failed ({err}); "
                     "the rest will be read on the next poll")
        await self._flush(row, items, again, worst)
        if complete:
            await self._ended(row, info, tally, canceled=canceled)
        return complete

    def _file(self, member: Member, result: dict[str, Any], *, canceled: bool,
              requeue_all: bool) -> Finished | None:
        """What one result makes of its job: a final record, or ``None`` to send it again."""
        r = self.state
        kind = str(result.get("type"))
        retry_left = requeue_all or member.attempts < r.max_attempts
        if kind == "succeeded":
            return self._succeeded(member, result)
        if kind == "errored":
            etype, message = _error_of(result)
            if type_outcome(etype).retry and retry_left and not canceled:
                return None
            return Finished(
                run_id=r.run_id, seq=member.seq, status=JobStatus.ERRORED, result=result,
                attempts=member.attempts, error_type=etype, error_message=message,
                mode="native")
        # canceled, expired
        if not canceled and retry_left:
            return None
        status = JobStatus.EXPIRED if kind == "expired" else JobStatus.CANCELED
        return Finished(run_id=r.run_id, seq=member.seq, status=status,
                        result={"type": status}, attempts=member.attempts, mode="native")

    async def _ended(self, row: BatchRow, info: BatchInfo, tally: dict[str, int], *,
                     canceled: bool) -> None:
        r = self.state
        leftover = await r.astore.end_batch(row.id, info.counts, info.ended_at)
        sent_again = sum(tally.get(k, 0) for k in ("errored", "canceled", "expired"))
        summary = ", ".join(f"{n} {k}" for k, n in sorted(tally.items())) or "no new results"
        extra = f"; {leftover} missing from its results, sent again" if leftover else ""
        r.notice(f"batch {row.id} ({row.provider_batch_id}) filed: {summary}{extra}"
                 + (f" (up to {sent_again} to send again)" if sent_again and not canceled
                    else ""))
        await r.astore.add_event(r.run_id, "batch", {
            "batch": row.id, "provider_batch_id": row.provider_batch_id, "status": "ended",
            "counts": info.counts})

    def _succeeded(self, member: Member, result: dict[str, Any]) -> Finished:
        r = self.state
        message = result.get("message") or {}
        usage = Usage.from_api(message.get("usage"))
        priced = price_answer(member.model, message, usage, free=r.provider.costs_nothing,
                              batch=True, prices=r.prices)
        return Finished(
            run_id=r.run_id, seq=member.seq, status=JobStatus.SUCCEEDED, result=result,
            attempts=member.attempts, input_tokens=usage.input_tokens,
            output_tokens=usage.output_tokens,
            cache_creation_input_tokens=usage.cache_creation_input_tokens,
            cache_read_input_tokens=usage.cache_read_input_tokens, cost_usd=priced.cost_usd,
            answered_model=priced.answered, asked_cost_usd=priced.asked_cost_usd,
            mode="native")

    async def _worst(self, row: BatchRow) -> dict[int, float]:
        """The worst case of each job waiting in the batch, as reserved of the budget
        when it was submitted (none without a budget: the batch's end gives back what
        was)."""
        r = self.state
        if r.budget_usd is None:
            return {}
        params = await r.astore.submitted_params(r.run_id, row.id)
        return {seq: r.worst_usd(p) for seq, p in params.items()}

    async def _flush(self, row: BatchRow, items: list[Finished], again: list[int],
                     worst: dict[int, float]) -> None:
        """File a group in one transaction, its jobs' reservations given back in it."""
        r = self.state
        if not items and not again:
            return
        recorded, moved = await r.astore.file_results(r.run_id, row.id, items, again, worst)
        done = set(recorded)
        for item in items:
            if item.seq in done:
                r.tally.count(item)
        r.tally.resubmitted += moved
        r.tally.retries += moved
        r.progress()


def _error_of(result: dict[str, Any]) -> tuple[str, str]:
    body = result.get("error") or {}
    inner = body.get("error", body) if isinstance(body, dict) else {}
    if not isinstance(inner, dict):
        return "api_error", str(inner)
    return str(inner.get("type") or "api_error"), str(inner.get("message") or "")
