"""Small builders shared by the store tests."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import select

from laneway.jobs.formats import Job
from laneway.store import Finished, Store
from laneway.store import schema as S
from laneway.store.statuses import JobStatus, RunStatus


def job_rows(store: Store, run_id: str, seqs: Sequence[int]) -> list[dict[str, Any]]:
    """The ledger's rows of these jobs, every column, read straight from the table."""
    with store.engine.connect() as conn:
        return [dict(r) for r in conn.execute(select(S.jobs).where(
            S.jobs.c.run_id == run_id, S.jobs.c.seq.in_(list(seqs)))).mappings()]


def params(text: str = "hi", *, model: str = "claude-haiku-4-5") -> dict[str, Any]:
    return {"model": model, "max_tokens": 16, "messages": [{"role": "user", "content": text}]}


def make_run(store: Store, run_id: str = "r1", *, n: int = 10, chunk: int = 4,
             budget_usd: float | None = None) -> str:
    """A run of ``n`` jobs ``j0..j{n-1}`` on lines 1..n, ingested in chunks."""
    store.create_run(run_id=run_id, fingerprint="fp-" + run_id, options={"model": "m"},
                     mode="realtime", provider="local", input_path="in.jsonl",
                     input_sha256="0" * 64, budget_usd=budget_usd)
    jobs = [Job(f"j{i}", params(f"job {i}"), i + 1) for i in range(n)]
    for start in range(0, n, chunk):
        part = jobs[start:start + chunk]
        store.add_jobs(run_id, part, first_seq=start, last_line=part[-1].line)
    store.update_run(run_id, ingest_done=True, total=n, status=RunStatus.READY)
    return run_id


def done(run_id: str, seq: int, *, text: str = "ok", cost_usd: float | None = 0.01,
         status: str = JobStatus.SUCCEEDED, tokens: tuple[int, int] = (10, 5)) -> Finished:
    result = ({"type": "succeeded", "message": {"content": [{"type": "text", "text": text}]}}
              if status == JobStatus.SUCCEEDED else
              {"type": "errored", "error": {"type": "invalid_request_error", "message": text}})
    return Finished(run_id=run_id, seq=seq, status=status, result=result, attempts=1,
                    input_tokens=tokens[0], output_tokens=tokens[1], cost_usd=cost_usd,
                    error_type=None if status == JobStatus.SUCCEEDED else "invalid_request_error")
