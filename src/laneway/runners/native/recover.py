"""Find out what became of a batch whose ``create`` answer never reached the ledger.

A row still in ``submitting`` means laneway stopped (or ``create`` failed) between
recording the submission and storing the provider's id. The batch may or may not exist.
The API has no idempotency key for ``create``, so laneway looks for it:

1. ``list`` the batches created since the row was written (less a clock-skew allowance),
   newest first, and keep those with the same number of requests that no batch row of
   the ledger already holds;
2. an *ended* candidate is ours exactly when a line of its results carries the row's
   id (every request id is ``j{seq}_{batch}``): it is adopted and polled as usual;
3. no candidate at all: ``create`` never took effect, and the jobs are sent again;
4. only candidates still running: nothing in a running batch tells whose it is, so the
   row waits (its jobs are *not* sent again: that could pay twice) and the check is
   repeated on every poll until they end.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from enum import StrEnum

from laneway.errors import ProviderError
from laneway.provider.batches import Batches, BatchInfo
from laneway.runners.native.wire import parse_custom_id
from laneway.store import AsyncStore
from laneway.store.batches import BatchRow


class Recovery(StrEnum):
    ADOPTED = "adopted"
    LOST = "lost"
    WAITING = "waiting"


async def recover_submitting(
    api: Batches, astore: AsyncStore, row: BatchRow, *, skew_s: float,
    notice: Callable[[str], None], quiet: bool = False,
) -> tuple[Recovery, BatchInfo | None]:
    """Settle one ``submitting`` row: adopt the provider's batch, give the jobs back, or
    wait. Returns the outcome and, when adopted, the batch."""
    try:
        recent = await api.recent(since=row.created_at - skew_s)
    except ProviderError as err:
        if not quiet:
            notice(f"batch {row.id}: cannot list the provider's batches yet ({err}); "
                   "will check again")
        return Recovery.WAITING, None
    known = await astore.known_provider_ids([b.id for b in recent])
    candidates = [b for b in recent if b.total == row.request_count and b.id not in known]
    running: list[BatchInfo] = []
    for cand in candidates:
        if not cand.ended:
            running.append(cand)
            continue
        try:
            first = await api.first_result(cand.id)
        except ProviderError:
            running.append(cand)  # cannot tell yet: treat it as undecided
            continue
        parsed = parse_custom_id(str(first.get("custom_id", ""))) if first else None
        if parsed is not None and parsed[1] == row.id:
            await astore.batch_submitted(row.id, cand.id)
            notice(f"batch {row.id}: found it at the provider as {cand.id} "
                   "(its create answer had been lost); carrying on")
            return Recovery.ADOPTED, cand
    if running:
        if not quiet:
            ids = ", ".join(b.id for b in running[:3])
            notice(f"batch {row.id}: its create answer was lost; {len(running)} batch(es) of "
                   f"the same size are still running ({ids}); its {row.request_count} jobs "
                   "wait until they end, to tell whether one is ours (never sent twice)")
        return Recovery.WAITING, None
    moved = await astore.abandon_batch(row.id, refund_attempt=True)
    age_s = time.time() - row.created_at
    notice(f"batch {row.id}: the provider has no such batch (checked {age_s:.0f} s after "
           f"the attempt); its {moved} jobs will be sent again")
    return Recovery.LOST, None
