"""The gateway's answers when the upstream fails (issue 24, goals 7 and 8).

``laneway local --engine echo`` (the upstream) and ``laneway serve --provider anthropic``
in front of it, each in its own process of this Python with ``PYTHONPATH`` set to
``--src`` (default: this tree's), so the same script measures two checkouts. The client
is an app as it comes: the SDK's ``AsyncAnthropic`` with its own default retries (2).

1. outage: ``--requests`` (300) requests at 10 a second; the upstream is killed 5 s in and
   started again on the same port ``--down-s`` (20) seconds later. Counted: answers that
   were errors, and the slowest answer, with the serve's default wait limits (300 s for
   these background requests). ``--client-retries 0``: what the gateway does alone.
2. persistent: one request each whose every try upstream is a 529, a 500, or a connection
   cut short (``x-laneway-fault``), the gateway's background wait limit set to 60 s:
   how long until the app sees the error, the status, ``x-should-retry``, the message
   and whether header and body carry one request id.
3. ttft: 10 streams through the gateway from an upstream that waits 300 ms before its
   first text: the client's time to its first text against the time to first token the
   Traffic page shows (``/v1/laneway/traffic``).

    .venv/bin/python bench/gateway_answers.py [--src ../before/src --name gateway_answers.before]
        [--only outage|persistent|ttft]
"""

from __future__ import annotations

import argparse
import asyncio
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import anthropic
import httpx

from _common import checkout_env, free_port, percentile, print_table, save, stop_process, wait_up

MODEL = "claude-haiku-4-5"
HI = [{"role": "user", "content": "Say hello in five words."}]
HERE = Path(__file__).resolve().parent




def _local(src: Path, port: int, *args: str) -> subprocess.Popen[bytes]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "laneway", "local", "--engine", "echo", "--port", str(port),
         *args], env=checkout_env(src), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wait_up(f"http://127.0.0.1:{port}/v1/models", proc, "the upstream")
    return proc


@contextmanager
def _serve(src: Path, upstream_port: int, *args: str) -> Iterator[str]:
    port = free_port()
    with tempfile.TemporaryDirectory() as tmp:
        proc = subprocess.Popen(
            [sys.executable, "-m", "laneway", "serve", "--provider", "anthropic",
             "--port", str(port), "--db", str(Path(tmp) / "ledger.db"), *args],
            env=checkout_env(src, ANTHROPIC_API_KEY="k",
                     ANTHROPIC_BASE_URL=f"http://127.0.0.1:{upstream_port}"),
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        url = f"http://127.0.0.1:{port}"
        try:
            wait_up(url + "/healthz", proc, "laneway serve")
            yield url
        finally:
            stop_process(proc)


async def _timed(client: anthropic.AsyncAnthropic, delay_s: float, i: int
                 ) -> tuple[float, int, float]:
    """(when it was sent, its status, how long its answer took)."""
    await asyncio.sleep(delay_s)
    started = time.monotonic()
    try:
        await client.messages.create(model=MODEL, max_tokens=5, messages=[
            {"role": "user", "content": f"request {i}"}])
        status = 200
    except anthropic.APIStatusError as exc:
        status = exc.status_code
    except anthropic.APIConnectionError:
        status = 0
    return delay_s, status, time.monotonic() - started


def outage(src: Path, *, requests: int, down_s: float, retries: int) -> dict[str, Any]:
    up_port = free_port()
    upstream = _local(src, up_port)
    try:
        with _serve(src, up_port) as url:
            async def main() -> tuple[float, list[tuple[float, int, float]]]:
                nonlocal upstream
                async with anthropic.AsyncAnthropic(base_url=url, api_key="k", timeout=600,
                                                    max_retries=retries) as client:
                    t0 = time.monotonic()
                    tasks = [asyncio.create_task(_timed(client, i / 10, i))
                             for i in range(requests)]
                    await asyncio.sleep(5)
                    stop_process(upstream)
                    await asyncio.sleep(down_s)
                    upstream = await asyncio.to_thread(_local, src, up_port)
                    back_at = time.monotonic() - t0
                    return back_at, await asyncio.gather(*tasks)

            back_at, answers = asyncio.run(main())
    finally:
        stop_process(upstream)
    failed = [a for a in answers if a[1] != 200]
    # How long after the upstream was back each request that waited for it got its answer.
    lag = [sent + took - back_at for sent, status, took in answers
           if status == 200 and sent + took > back_at and sent < back_at]
    return {"requests": requests, "down_s": down_s, "client_retries": retries,
            "failed": len(failed),
            "failed_statuses": sorted({a[1] for a in failed}),
            "slowest_s": round(max(a[2] for a in answers), 1),
            "p50_s": round(percentile([a[2] for a in answers], 50), 2),
            "after_back_p50_s": round(percentile(lag, 50), 2),
            "after_back_max_s": round(max(lag, default=0.0), 2)}


async def _persistent_one(url: str, fault: str) -> dict[str, Any]:
    started = time.monotonic()
    async with anthropic.AsyncAnthropic(base_url=url, api_key="k", timeout=600) as client:
        try:
            await client.messages.create(model=MODEL, max_tokens=5, messages=HI,
                                         extra_headers={"x-laneway-fault": fault})
            return {"fault": fault, "status": 200}
        except anthropic.APIStatusError as exc:
            body = exc.body if isinstance(exc.body, dict) else {}
            return {"fault": fault, "status": exc.status_code,
                    "surfaced_s": round(time.monotonic() - started, 1),
                    "x_should_retry": exc.response.headers.get("x-should-retry"),
                    "request_id_matches": bool(body.get("request_id")) and body.get(
                        "request_id") == exc.response.headers.get("request-id"),
                    "message": exc.api_message if hasattr(exc, "api_message") else str(exc)}


def persistent(src: Path) -> list[dict[str, Any]]:
    up_port = free_port()
    upstream = _local(src, up_port)
    try:
        with _serve(src, up_port, "--wait-background", "60") as url:
            async def main() -> list[dict[str, Any]]:
                return list(await asyncio.gather(*(_persistent_one(url, f)
                                                   for f in ("529", "500", "drop"))))
            return asyncio.run(main())
    finally:
        stop_process(upstream)


def ttft(src: Path, *, streams: int = 10) -> dict[str, Any]:
    up_port = free_port()
    upstream = _local(src, up_port, "--ttft-ms", "300")
    try:
        with _serve(src, up_port) as url:
            client = anthropic.Anthropic(base_url=url, api_key="k")
            seen = []
            for _ in range(streams):
                started = time.monotonic()
                with client.messages.stream(model=MODEL, max_tokens=5, messages=HI) as s:
                    first = None
                    for _text in s.text_stream:
                        first = first or time.monotonic() - started
                seen.append(first or float("nan"))
            time.sleep(0.5)
            rows = httpx.get(url + "/v1/laneway/traffic", timeout=10).json()["keys"]
            shown = [r["ttft_s_p50"] for r in rows if r["lane"] == "interactive"]
    finally:
        stop_process(upstream)
    return {"client_first_text_p50_s": round(percentile(seen, 50), 3),
            "traffic_ttft_p50_s": shown[0] if shown else None}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--src", type=Path, default=HERE.parent / "src")
    ap.add_argument("--only", choices=["outage", "persistent", "ttft"])
    ap.add_argument("--requests", type=int, default=300)
    ap.add_argument("--down-s", type=float, default=20.0)
    ap.add_argument("--client-retries", type=int, default=2,
                    help="outage: the SDK's own retries (its default: 2)")
    ap.add_argument("--name", default="gateway_answers",
                    help="results file: bench/results/NAME.json")
    args = ap.parse_args()
    src = args.src.resolve()
    out: dict[str, Any] = {"src": str(src)}
    if args.only in (None, "ttft"):
        out["ttft"] = ttft(src)
        print_table("time to first token (upstream: 300 ms to first text)",
                    list(out["ttft"]), [list(out["ttft"].values())])
    if args.only in (None, "persistent"):
        out["persistent"] = persistent(src)
        header = ["fault", "status", "surfaced_s", "x_should_retry", "request_id_matches"]
        print_table("a persistent failure upstream (SDK with its default retries)", header,
                    [[r.get(h) for h in header] for r in out["persistent"]])
        for r in out["persistent"]:
            print(f"  {r['fault']}: {r.get('message')}")
    if args.only in (None, "outage"):
        out["outage"] = outage(src, requests=args.requests, down_s=args.down_s,
                               retries=args.client_retries)
        print_table(f"upstream down {args.down_s:g} s", list(out["outage"]),
                    [list(out["outage"].values())])
    save(args.name, out)


if __name__ == "__main__":
    main()
