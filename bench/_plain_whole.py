"""The guide's "Parallel batch with asyncio" as a whole program, for bench/whole_command.py.

    python bench/_plain_whole.py IN.jsonl OUT.jsonl CONCURRENCY MAX_TOKENS

The guide's ``process_single`` and ``batch_process`` (its client: ``AsyncAnthropic()``,
so the SDK's 2 retries, from ``ANTHROPIC_BASE_URL``/``ANTHROPIC_API_KEY``), with the
guide's advice for partial results: ``on_complete`` writes each result to the results
file as it completes. The changes, none of which slows it: ``max_tokens`` from the
command line instead of 1,024, the jobs read from a JSONL file of ``{id, prompt}`` lines,
and no line printed per job. It imports only what the guide's code does, so its start-up
is the plain pattern's own.
"""

import asyncio
import json
import sys
from collections.abc import Callable
from dataclasses import asdict, dataclass

import anthropic

MAX_TOKENS = 1024


@dataclass
class BatchJob:
    id: str
    prompt: str
    metadata: dict = None  # type: ignore[type-arg, assignment]  # the guide's


@dataclass
class BatchResult:
    job_id: str
    output: str
    input_tokens: int
    output_tokens: int
    error: str = None  # type: ignore[assignment]  # the guide's


async def process_single(client: anthropic.AsyncAnthropic, job: BatchJob,
                         semaphore: asyncio.Semaphore) -> BatchResult:
    """Process a single job with rate limiting via semaphore."""
    async with semaphore:
        try:
            response = await client.messages.create(
                model="claude-haiku-4-5",
                max_tokens=MAX_TOKENS,
                messages=[{"role": "user", "content": job.prompt}]
            )
            return BatchResult(
                job_id=job.id,
                output=response.content[0].text,  # type: ignore[union-attr]
                input_tokens=response.usage.input_tokens,
                output_tokens=response.usage.output_tokens
            )
        except anthropic.RateLimitError:
            await asyncio.sleep(60)
            return await process_single(client, job, semaphore)
        except Exception as e:
            return BatchResult(job_id=job.id, output="", input_tokens=0, output_tokens=0,
                               error=str(e))


async def batch_process(jobs: list[BatchJob], concurrency: int = 5,
                        on_complete: Callable[[BatchResult], None] | None = None,
                        ) -> list[BatchResult]:
    """Process jobs in parallel with controlled concurrency."""
    client = anthropic.AsyncAnthropic()
    semaphore = asyncio.Semaphore(concurrency)
    tasks = [process_single(client, job, semaphore) for job in jobs]
    results = []
    for coro in asyncio.as_completed(tasks):
        result = await coro
        results.append(result)
        if on_complete:
            on_complete(result)
    return results


def main() -> int:
    global MAX_TOKENS
    inp, out, concurrency, MAX_TOKENS = sys.argv[1], sys.argv[2], int(sys.argv[3]), \
        int(sys.argv[4])
    with open(inp) as f:
        jobs = [BatchJob(id=r["id"], prompt=r["prompt"])
                for r in map(json.loads, f) if r]
    with open(out, "w") as results_file:
        def on_complete(result: BatchResult) -> None:  # the guide: save as they complete
            results_file.write(json.dumps(asdict(result)) + "\n")

        results = asyncio.run(batch_process(jobs, concurrency, on_complete))
    failed = sum(1 for r in results if r.error)
    print(json.dumps({"ok": len(results) - failed, "errors": failed}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
