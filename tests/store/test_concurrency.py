"""Several workers at once on one ledger: claims never overlap, results count once."""

from __future__ import annotations

import threading
from collections import Counter

from laneway.store import Store, open_store
from laneway.store.statuses import JobStatus

from .helpers import done, job_rows, make_run


def _race(store_dsn: str, n_workers: int, body: object) -> list[object]:
    """Run ``body(store, i)`` in ``n_workers`` threads, each with its own connection pool
    (as separate processes would), released together."""
    out: list[object] = [None] * n_workers
    gate = threading.Barrier(n_workers)

    def target(i: int) -> None:
        st = open_store(store_dsn)
        try:
            gate.wait()
            out[i] = body(st, i)  # type: ignore[operator]
        finally:
            st.close()

    threads = [threading.Thread(target=target, args=(i,)) for i in range(n_workers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    return out


def test_concurrent_claims_never_overlap(store: Store, store_dsn: str) -> None:
    make_run(store, n=600, chunk=200)

    def claim_all(st: Store, i: int) -> list[int]:
        got: list[int] = []
        while batch := st.claim("r1", worker=f"w{i}", limit=7, lease_s=60):
            got.extend(c.seq for c in batch)
        return got

    results = _race(store_dsn, 4, claim_all)
    every = Counter(seq for got in results for seq in got)  # type: ignore[union-attr]
    assert sorted(every) == list(range(600))
    assert max(every.values()) == 1
    by_worker = Counter(r["claimed_by"] for r in job_rows(store, "r1", range(600)))
    assert sum(by_worker.values()) == 600 and len(by_worker) >= 2


def test_concurrent_finishes_count_each_job_once(store: Store, store_dsn: str) -> None:
    make_run(store, n=300, chunk=300)
    store.claim("r1", worker="w0", limit=300, lease_s=60)

    def finish_all(st: Store, i: int) -> list[int]:
        recorded: list[int] = []
        for start in range(0, 300, 50):
            recorded += st.finish([done("r1", s, text=f"from {i}")
                                   for s in range(start, start + 50)])
        return recorded

    results = _race(store_dsn, 3, finish_all)
    every = Counter(seq for got in results for seq in got)  # type: ignore[union-attr]
    assert sorted(every) == list(range(300)) and max(every.values()) == 1
    counts = store.counts("r1")
    assert counts[JobStatus.SUCCEEDED] == 300 and counts.input_tokens == 3000
