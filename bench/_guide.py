"""The guide's batch code ("Parallel batch with asyncio"), as it is, for the benchmarks.

``process_single`` and ``batch_process`` are the guide's, with four changes that do not
change what they send or when: the job's ``max_tokens`` instead of the guide's 1,024 (the
jobs are bench/ratelimit.py's, 16-128 tokens out); the client is built with an explicit
``base_url`` and a response hook that counts statuses (the SDK's defaults otherwise: 2
retries, 10-minute timeout); the RateLimitErrors it catches are counted; and no line is
printed per job. As in the guide, the retry after ``sleep(60)`` asks for the semaphore
again while it still holds it.

:meth:`GuideBatch.run` runs it with a time limit, and stops it when no job has finished
for ``stall_s`` seconds (which is how that retry deadlocks: every permit held by a task
waiting for another one).
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import anthropic


@dataclass
class BatchJob:
    id: str
    prompt: str
    metadata: dict = None  # type: ignore[type-arg, assignment]  # the guide's
    max_tokens: int = 1024


@dataclass
class BatchResult:
    job_id: str
    output: str
    input_tokens: int
    output_tokens: int
    error: str = None  # type: ignore[assignment]  # the guide's


class GuideBatch:
    def __init__(self, base_url: str) -> None:
        self.base_url = base_url
        self.statuses: Counter[int] = Counter()
        self.rate_limit_errors = 0
        #: Tasks that caught a RateLimitError and have not finished (they hold a permit).
        self.reentering = 0
        #: One row per job done: when, and its usage (for shares over a time window).
        self.done_rows: list[dict[str, float]] = []
        self._tasks: list[asyncio.Future[BatchResult]] = []
        self._stopping = False

    async def _hook(self, response: Any) -> None:
        self.statuses[response.status_code] += 1

    def client(self) -> anthropic.AsyncAnthropic:
        http = anthropic.DefaultAsyncHttpxClient(event_hooks={"response": [self._hook]})
        return anthropic.AsyncAnthropic(base_url=self.base_url, api_key="x", http_client=http)

    # -- the guide's code ---------------------------------------------------------------------
    async def process_single(self, client: anthropic.AsyncAnthropic, job: BatchJob,
                             semaphore: asyncio.Semaphore) -> BatchResult:
        """Process a single job with rate limiting via semaphore."""
        async with semaphore:
            try:
                response = await client.messages.create(
                    model="claude-haiku-4-5",  # Use Haiku for batch cost efficiency
                    max_tokens=job.max_tokens,
                    messages=[{"role": "user", "content": job.prompt}]
                )
                return BatchResult(
                    job_id=job.id,
                    output=response.content[0].text,  # type: ignore[union-attr]
                    input_tokens=response.usage.input_tokens,
                    output_tokens=response.usage.output_tokens
                )
            except anthropic.RateLimitError:
                # Exponential backoff on rate limit
                self.rate_limit_errors += 1
                self.reentering += 1
                try:
                    await asyncio.sleep(60)
                    return await self.process_single(client, job, semaphore)
                finally:
                    self.reentering -= 1
            except Exception as e:
                return BatchResult(
                    job_id=job.id,
                    output="",
                    input_tokens=0,
                    output_tokens=0,
                    error=str(e)
                )

    async def batch_process(self, jobs: list[BatchJob], concurrency: int = 5,
                            on_complete: Callable[[BatchResult], None] | None = None,
                            ) -> list[BatchResult]:
        """Process jobs in parallel with controlled concurrency."""
        client = self.client()
        semaphore = asyncio.Semaphore(concurrency)
        # The guide passes the coroutines; as_completed makes these same tasks of them.
        tasks = [asyncio.ensure_future(self.process_single(client, job, semaphore))
                 for job in jobs]
        self._tasks = tasks
        results = []
        try:
            for coro in asyncio.as_completed(tasks):
                result = await coro
                results.append(result)
                if on_complete:
                    on_complete(result)
        finally:
            await client.close()
        return results

    # -- the bench around it ------------------------------------------------------------------
    def stop(self) -> None:
        self._stopping = True

    async def run(self, rows: list[dict[str, Any]], *, concurrency: int, max_s: float,
                  stall_s: float = 150.0) -> dict[str, Any]:
        jobs = [BatchJob(id=r["id"], prompt=r["prompt"], max_tokens=r["max_tokens"])
                for r in rows]
        results: list[BatchResult] = []
        started = last = time.monotonic()

        def on_complete(r: BatchResult) -> None:
            nonlocal last
            last = time.monotonic()
            results.append(r)
            if not r.error:
                self.done_rows.append({"done": last, "input": r.input_tokens,
                                       "output": r.output_tokens})

        work = asyncio.create_task(self.batch_process(jobs, concurrency, on_complete))
        stopped = ""
        while not work.done():
            await asyncio.wait({work}, timeout=1.0)
            now = time.monotonic()
            if work.done():
                break
            if self._stopping:
                stopped = "stopped by the bench"
            elif now - started > max_s:
                stopped = f"time limit of {max_s:.0f} s"
            elif now - last > stall_s:
                stopped = (f"stalled: no job finished for {stall_s:.0f} s; {self.reentering} "
                           "tasks hold a permit while they wait for another one (the guide's "
                           "retry re-enters the semaphore it holds)")
            if stopped:
                for t in [work, *self._tasks]:
                    t.cancel()
                await asyncio.gather(work, *self._tasks, return_exceptions=True)
        wall = time.monotonic() - started
        ok = [r for r in results if not r.error]
        errors = Counter(r.error[:80] for r in results if r.error)
        return {"wall_s": wall, "active_s": last - started, "ok": len(ok),
                "failed": len(results) - len(ok), "unfinished": len(jobs) - len(results),
                "rate_limit_errors": self.rate_limit_errors,
                "client_429": self.statuses.get(429, 0), "statuses": dict(self.statuses),
                "errors": dict(errors.most_common(3)), "stopped": stopped,
                "used": {"requests": len(ok), "input": sum(r.input_tokens for r in ok),
                         "output": sum(r.output_tokens for r in ok)}}
