"""Submitting: claim pending jobs in input order, build a chunk while they fit, and
create it as a batch at the provider, recorded in the ledger before and after.

A chunk stops at the first job that would pass a limit: ``max_requests``, ``max_bytes``
of body (measured on the encoded bytes that will be sent), or the budget (the sum of
the chunk's worst-case costs must fit in what is left of ``--budget`` after what every
process on the run spent and reserved, the ledger's ``runs.committed_usd``). Jobs
claimed past that point are released at once. The chunk's worst case is reserved in
the transaction that records it before ``create``
(:meth:`~laneway.store.batches.BatchLedger.begin_batch`): when another process reserved
meanwhile and it no longer fits, nothing is recorded and the chunk is built again.
A single request larger than ``max_bytes`` can never be sent in a batch: it is
recorded as ``errored`` (``request_too_large``) rather than retried forever.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass, field

from laneway.errors import BatchesUnsupportedError, ConfigError, ProviderError, RequestError
from laneway.provider.batches import BODY_OVERHEAD_BYTES
from laneway.runners.native.state import NativeState
from laneway.runners.native.wire import encode_request
from laneway.store import ClaimedJob, Finished
from laneway.store.batches import Begun
from laneway.store.statuses import JobStatus
from laneway.wire.batches import errored

#: Jobs claimed per query while a chunk is built.
CLAIM_PAGE = 2000


@dataclass
class Chunk:
    batch_id: str
    seqs: list[int] = field(default_factory=list)
    parts: list[bytes] = field(default_factory=list)
    size_bytes: int = BODY_OVERHEAD_BYTES
    worst_usd: float = 0.0
    #: The budget cut the chunk short.
    over_budget: bool = False
    next_worst_usd: float = 0.0
    #: Jobs still unsent when the budget cut the chunk.
    left_out: int = 0
    #: What the run's budget had left when the chunk was built (None: no budget).
    budget_left: float | None = None
    #: Jobs recorded as errored because no batch can hold them.
    too_large: int = 0


def new_batch_id() -> str:
    """A ledger batch id: short, and safe inside a batch custom_id."""
    return "b" + secrets.token_hex(6)


async def build_chunk(st: NativeState) -> Chunk | None:
    """The next chunk of the run, its jobs claimed; ``None`` if nothing is pending."""
    opts = st.options
    astore = st.astore
    chunk = Chunk(new_batch_id())
    chunk.budget_left = budget_left = await st.budget_left_usd()
    leftovers: list[int] = []
    too_large: list[ClaimedJob] = []
    full = claimed_any = False
    while not full:
        want = min(CLAIM_PAGE, opts.max_requests - len(chunk.seqs))
        page = await astore.claim(st.run_id, worker=st.worker_id, limit=want,
                                  lease_s=opts.lease_s)
        if not page:
            break
        claimed_any = True
        for job in page:
            if full:
                leftovers.append(job.seq)
                continue
            part = encode_request(job.seq, chunk.batch_id, job.params)
            if BODY_OVERHEAD_BYTES + len(part) > opts.max_bytes:
                too_large.append(job)
                continue
            extra = len(part) + (1 if chunk.seqs else 0)  # the comma between requests
            if chunk.size_bytes + extra > opts.max_bytes:
                full = True
                leftovers.append(job.seq)
                continue
            worst = st.worst_usd(job.params)
            if budget_left is not None and chunk.worst_usd + worst > budget_left:
                full = chunk.over_budget = True
                chunk.next_worst_usd = worst
                leftovers.append(job.seq)
                continue
            chunk.seqs.append(job.seq)
            chunk.parts.append(part)
            chunk.size_bytes += extra
            chunk.worst_usd += worst
        if len(chunk.seqs) >= opts.max_requests or len(page) < want:
            full = True
    if leftovers:
        await astore.release(st.run_id, leftovers, worker=st.worker_id)
    if too_large:
        chunk.too_large = len(too_large)
        await _record_too_large(st, too_large)
    if not claimed_any:
        return None
    if chunk.over_budget:
        chunk.left_out = len(await astore.unsent_seqs(st.run_id))
    return chunk


async def _record_too_large(st: NativeState, jobs: list[ClaimedJob]) -> None:
    limit = st.options.max_bytes
    items = []
    for job in jobs:
        message = (f"the request is larger than a whole batch may be ({limit:,} bytes); "
                   "it cannot be sent as a native batch request")
        items.append(Finished(
            run_id=st.run_id, seq=job.seq, status=JobStatus.ERRORED,
            result=errored("request_too_large", message), attempts=job.attempts,
            error_type="request_too_large", error_message=message, mode="native"))
    recorded = await st.astore.finish(items)
    st.tally.errored += len(recorded)
    st.notice(f"{len(jobs)} job(s) larger than a batch may be ({limit:,} bytes) recorded "
                  f"as errored: {', '.join(j.custom_id for j in jobs[:5])}")


class Submitter:
    """Sends what is pending as batches, within the limits and the budget."""

    def __init__(self, state: NativeState) -> None:
        self.state = state
        self._failed_creates = 0

    async def submit_pending(self) -> int:
        """Submit chunks until nothing is pending (or the budget stops it); returns how
        many jobs were sent."""
        st = self.state
        sent = 0
        races = 0
        while not st.stop_event.is_set():
            chunk = await build_chunk(st)
            if chunk is None:
                break
            if not chunk.seqs:
                if chunk.over_budget:
                    self._over_budget(chunk)
                elif chunk.too_large:
                    continue  # all it claimed was too large (and is recorded): go on
                break
            begun = await st.astore.begin_batch(
                run_id=st.run_id, batch_id=chunk.batch_id, seqs=chunk.seqs,
                size_bytes=chunk.size_bytes, worker=st.worker_id, lease_s=st.options.lease_s,
                reserve_usd=chunk.worst_usd, budget_usd=st.budget_usd)
            if not begun:  # a lease ran out and another worker took some, or another
                # process reserved of the budget meanwhile: build the chunk again
                if begun is Begun.OVER_BUDGET:
                    await st.astore.release(st.run_id, chunk.seqs, worker=st.worker_id)
                races += 1
                if races > 3:
                    break
                continue
            await self._create(chunk)
            sent += len(chunk.seqs)
            if chunk.over_budget:
                self._over_budget(chunk)
                break
        return sent

    def _over_budget(self, chunk: Chunk) -> None:
        st = self.state
        left = chunk.budget_left or 0.0
        if st.rows:
            if not st.budget_wait:
                st.notice(f"budget: ${left:.4f} left after the worst case of the batches in "
                          f"flight; {chunk.left_out} jobs wait for them to end")
            st.budget_wait = True
            return
        st.tally.stop_reason = "budget"
        st.notice(f"budget: the next jobs (worst case ${chunk.next_worst_usd:.4f}) would pass "
                  f"--budget ${st.budget_usd:g} (${left:.4f} left): not submitted; "
                  f"{chunk.left_out} jobs not sent")

    async def _create(self, chunk: Chunk) -> None:
        st = self.state
        body = b'{"requests":[' + b",".join(chunk.parts) + b"]}"
        n = len(chunk.seqs)
        try:
            info = await st.batches.create(body)
        except BatchesUnsupportedError:
            await st.astore.abandon_batch(chunk.batch_id, refund_attempt=True)
            raise  # not this batch: every batch (the caller may go realtime)
        except RequestError as err:
            await st.astore.abandon_batch(chunk.batch_id, refund_attempt=True)
            raise ConfigError(f"the provider refused a batch of {n} requests "
                              f"({len(body):,} bytes): {err}") from None
        except ProviderError as err:
            # It may exist at the provider all the same: the row stays ``submitting`` and
            # is settled by the recovery check on a later poll.
            self._failed_creates += 1
            st.notice(f"batch {chunk.batch_id}: create failed ({err}); will check whether "
                      "the provider has it before sending its jobs again")
            if self._failed_creates >= max(1, st.max_attempts):
                raise
            st.rows[chunk.batch_id] = await st.row(chunk.batch_id)
            return
        await st.astore.batch_submitted(chunk.batch_id, info.id)
        self._failed_creates = 0
        st.tally.batches += 1
        st.tally.requests += n
        st.seen[chunk.batch_id] = info
        st.rows[chunk.batch_id] = await st.row(chunk.batch_id)
        st.tally.in_flight += n
        st.notice(f"batch {chunk.batch_id} submitted as {info.id}: {n} requests, "
                  f"{_size(len(body))}")
        await st.astore.add_event(st.run_id, "batch", {
            "batch": chunk.batch_id, "provider_batch_id": info.id, "status": "submitted",
            "requests": n, "bytes": len(body)})


def _size(n_bytes: int) -> str:
    return f"{n_bytes / 1e6:.1f} MB" if n_bytes >= 1e6 else f"{n_bytes / 1e3:.1f} kB"
