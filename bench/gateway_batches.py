"""A Message Batch of 10,000 requests through the gateway, killed twice on the way.

The upstream is ``laneway local`` (echo engine, its own process, Message Batches at
``--batch-concurrency``); the gateway is ``laneway serve`` in its own process pointed at
it with ANTHROPIC_BASE_URL. The official SDK creates the batch on the gateway; while it
runs, the gateway is killed with SIGKILL and started again on the same ledger, twice;
then the SDK polls until the batch ends and reads its results.

Counted on both sides: results (each custom_id once, every one succeeded, each line in
the API's form with the upstream's own answer), and the upstream's batches (created
once: a restart re-attaches, never submits again) and the requests they held.

    python bench/gateway_batches.py [--requests 10000] [--kills 2]
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import anthropic
import httpx

from _common import free_port, local_api_process, print_table, save

MODEL = "claude-haiku-4-5"


def start_gateway(upstream: str, db: Path, port: int) -> subprocess.Popen[bytes]:
    env = {**os.environ, "ANTHROPIC_BASE_URL": upstream, "ANTHROPIC_API_KEY": "bench"}
    proc = subprocess.Popen([sys.executable, "-m", "laneway", "serve", "--port", str(port),
                             "--db", str(db)], env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 60
    while True:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200:
                return proc
        except httpx.HTTPError:
            pass
        if proc.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError("laneway serve did not start")
        time.sleep(0.1)


def requests(n: int) -> list[dict[str, Any]]:
    return [{"custom_id": f"r{i}", "params": {
        "model": MODEL, "max_tokens": 16,
        "messages": [{"role": "user", "content": f"request number {i}"}]}} for i in range(n)]


def check_results(lines: list[str], n: int) -> dict[str, int]:
    seen: dict[str, int] = {}
    bad_form = wrong = 0
    for line in lines:
        row = json.loads(line)
        cid = row.get("custom_id")
        seen[cid] = seen.get(cid, 0) + 1
        result = row.get("result") or {}
        if set(row) != {"custom_id", "result"} or result.get("type") != "succeeded" or \
                result.get("message", {}).get("type") != "message":
            bad_form += 1
            continue
        text = "".join(b.get("text", "") for b in result["message"]["content"])
        wrong += not f"request number {cid[1:]}".startswith(text)
    return {"lines": len(lines), "distinct": len(seen),
            "duplicated": sum(1 for c in seen.values() if c > 1),
            "lost": n - len([c for c in seen if c in {f"r{i}" for i in range(n)}]),
            "not_in_api_form": bad_form, "wrong_answer": wrong}


def run(n: int, kills: int, kill_every_s: float) -> dict[str, Any]:
    with local_api_process("--batch-concurrency", "8") as upstream, \
            tempfile.TemporaryDirectory() as tmp:
        port = free_port()
        gateway = start_gateway(upstream, Path(tmp) / "ledger.db", port)
        client = anthropic.Anthropic(base_url=f"http://127.0.0.1:{port}", api_key="x",
                                     max_retries=5)
        started = time.monotonic()
        batch = client.messages.batches.create(requests=requests(n))  # type: ignore[arg-type]
        created_s = time.monotonic() - started
        killed = 0
        while True:
            time.sleep(kill_every_s if killed < kills else 1.0)
            if killed < kills:
                gateway.send_signal(signal.SIGKILL)
                gateway.wait()
                killed += 1
                gateway = start_gateway(upstream, Path(tmp) / "ledger.db", port)
                continue
            if client.messages.batches.retrieve(batch.id).processing_status == "ended":
                break
        ended_s = time.monotonic() - started
        final = client.messages.batches.retrieve(batch.id)
        raw = httpx.get(f"http://127.0.0.1:{port}/v1/messages/batches/{batch.id}/results",
                        timeout=60)
        lines = [x for x in raw.text.splitlines() if x.strip()]
        upstream_batches = httpx.get(upstream + "/v1/messages/batches?limit=1000",
                                     headers={"x-api-key": "x",
                                              "anthropic-version": "2023-06-01"}).json()
        gateway.terminate()
        gateway.wait(timeout=30)
        held = sum(sum(b["request_counts"].values()) for b in upstream_batches["data"])
        return {"requests": n, "kills": killed, "create_s": round(created_s, 2),
                "ended_s": round(ended_s, 1), "counts": final.request_counts.to_dict(),
                "results": check_results(lines, n),
                "upstream_batches": len(upstream_batches["data"]),
                "upstream_requests_in_batches": held}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--requests", type=int, default=10_000)
    ap.add_argument("--kills", type=int, default=2)
    ap.add_argument("--kill-every-s", type=float, default=4.0)
    args = ap.parse_args()
    out = run(args.requests, args.kills, args.kill_every_s)
    r = out["results"]
    print_table("A Message Batch through the gateway, killed meanwhile",
                ["figure", "value", "goal"], [
        ["requests", out["requests"], ""],
        ["gateway killed (SIGKILL) meanwhile", out["kills"], "2"],
        ["create answered in (s)", out["create_s"], ""],
        ["batch ended after (s)", out["ended_s"], ""],
        ["succeeded (batch counts)", out["counts"]["succeeded"], out["requests"]],
        ["result lines", r["lines"], out["requests"]],
        ["lost", r["lost"], 0],
        ["duplicated", r["duplicated"], 0],
        ["lines not in the API's form", r["not_in_api_form"], 0],
        ["answers not the upstream's", r["wrong_answer"], 0],
        ["upstream batches created", out["upstream_batches"], 1],
        ["requests in upstream batches", out["upstream_requests_in_batches"], out["requests"]],
    ])
    save("gateway_batches", out)


if __name__ == "__main__":
    main()
