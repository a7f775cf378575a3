"""Building one batch: claim pending jobs in input order while they fit.

A chunk stops at the first job that would pass a limit: ``max_requests``, ``max_bytes``
of body (measured on the encoded bytes that will be sent), or the budget (the sum of
the chunk's worst-case costs must fit in what is left of ``--budget`` after what is
spent and what batches in flight may still cost). Jobs claimed past that point are
released at once. A single request larger than ``max_bytes`` can never be sent in a
batch: it is recorded as ``errored`` (``request_too_large``) rather than retried forever.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from laneway.jobs import errored
from laneway.provider_batches import BODY_OVERHEAD_BYTES
from laneway.runners.native_batch import encode_request
from laneway.store import ClaimedJob, Finished
from laneway.store import schema as S

if TYPE_CHECKING:
    from laneway.runners.native import NativeRunner

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
    #: Jobs recorded as errored because no batch can hold them.
    too_large: int = 0


def new_batch_id() -> str:
    """A ledger batch id: short, and safe inside a batch custom_id."""
    return "b" + secrets.token_hex(6)


async def build_chunk(runner: NativeRunner) -> Chunk | None:
    """The next chunk of ``runner``'s run, its jobs claimed; ``None`` if nothing is pending."""
    opts = runner.options
    astore, store = runner.astore, runner.store
    chunk = Chunk(new_batch_id())
    budget_left = runner.budget_left_usd()
    leftovers: list[int] = []
    too_large: list[ClaimedJob] = []
    full = claimed_any = False
    while not full:
        want = min(CLAIM_PAGE, opts.max_requests - len(chunk.seqs))
        page = await astore.call(store.claim, runner.run_id, worker=runner.worker_id,
                                 limit=want, lease_s=opts.lease_s)
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
            worst = runner.worst_usd(job.params)
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
        await astore.call(store.release, runner.run_id, leftovers, worker=runner.worker_id)
    if too_large:
        chunk.too_large = len(too_large)
        await _record_too_large(runner, too_large)
    if not claimed_any:
        return None
    if chunk.over_budget:
        chunk.left_out = len(await astore.call(store.unsent_seqs, runner.run_id))
    return chunk


async def _record_too_large(runner: NativeRunner, jobs: list[ClaimedJob]) -> None:
    limit = runner.options.max_bytes
    items = []
    for job in jobs:
        message = (f"the request is larger than a whole batch may be ({limit:,} bytes); "
                   "it cannot be sent as a native batch request")
        items.append(Finished(
            run_id=runner.run_id, seq=job.seq, status=S.ERRORED,
            result=errored("request_too_large", message), attempts=job.attempts,
            error_type="request_too_large", error_message=message, mode="native"))
    recorded = await runner.astore.call(runner.store.finish, items)
    runner.tally.errored += len(recorded)
    runner.notice(f"{len(jobs)} job(s) larger than a batch may be ({limit:,} bytes) recorded "
                  f"as errored: {', '.join(j.custom_id for j in jobs[:5])}")
