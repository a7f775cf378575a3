"""Helpers shared by the benchmarks: a local API in its own process, jobs, tables, JSON."""

from __future__ import annotations

import json
import os
import random
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx

RESULTS = Path(__file__).parent / "results"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def local_api_process(*args: str, engine: str = "echo") -> Iterator[str]:
    """``laneway local --engine ENGINE ARGS`` in its own process; yields its base URL."""
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "laneway", "local", "--engine", engine, "--port", str(port),
         *args],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                httpx.get(url + "/v1/messages/batches", timeout=1)
                break
            except httpx.HTTPError:
                if time.monotonic() > deadline or proc.poll() is not None:
                    raise RuntimeError("the local API did not start") from None
                time.sleep(0.1)
        yield url
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def varied_jobs(n: int, *, seed: int = 7, min_words: int = 40, max_words: int = 400,
                min_out: int = 32, max_out: int = 256) -> list[dict[str, Any]]:
    """Jobs of varied size: prompts of 40-400 words, max_tokens of 32-256."""
    rng = random.Random(seed)
    jobs = []
    for i in range(n):
        words = rng.randint(min_words, max_words)
        prompt = " ".join(f"w{rng.randint(0, 999)}" for _ in range(words))
        jobs.append({"id": f"job-{i}", "prompt": prompt,
                     "max_tokens": rng.randint(min_out, max_out)})
    return jobs


def write_jsonl(path: Path, rows: list[dict[str, Any]]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    k = max(0, min(len(ordered) - 1, round(q / 100 * (len(ordered) - 1))))
    return ordered[k]


def print_table(title: str, header: list[str], rows: list[list[Any]]) -> None:
    widths = [max(len(str(x)) for x in col) for col in zip(header, *rows, strict=False)]
    print(f"\n{title}")
    print("  ".join(str(h).ljust(w) for h, w in zip(header, widths, strict=False)))
    print("  ".join("-" * w for w in widths))
    for row in rows:
        print("  ".join(str(c).ljust(w) for c, w in zip(row, widths, strict=False)))


def save(name: str, data: dict[str, Any]) -> Path:
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / f"{name}.json"
    data = {"machine": {"cpus": os.cpu_count(), "load": os.getloadavg()}, **data}
    path.write_text(json.dumps(data, indent=2))
    print(f"\nwrote {path}")
    return path


def checkout_env(src: Path, **extra: str) -> dict[str, str]:
    """This environment for a laneway process of the checkout ``src`` (``PYTHONPATH``),
    without the caller's ``ANTHROPIC_*`` settings."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("ANTHROPIC_")}
    return {**env, "PYTHONPATH": str(src), **extra}


def wait_up(url: str, proc: subprocess.Popen[bytes], what: str, *,
            timeout_s: float = 60.0) -> None:
    """Until ``url`` answers at all; ``RuntimeError`` if ``proc`` exits or time runs out."""
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            httpx.get(url, timeout=2)
            return
        except httpx.HTTPError:
            if time.monotonic() > deadline or proc.poll() is not None:
                raise RuntimeError(f"{what} did not start") from None
            time.sleep(0.1)


def stop_process(proc: subprocess.Popen[bytes], sig: int = signal.SIGTERM,
                 timeout_s: float = 10.0) -> None:
    """Signal ``proc`` and wait; killed if it has not ended within ``timeout_s``."""
    proc.send_signal(sig)
    try:
        proc.wait(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def serve_process(local_url: str, db: str | Path, *options: str, timeout_s: float = 30.0
                  ) -> tuple[subprocess.Popen[bytes], str]:
    """``laneway serve`` in front of the API at ``local_url`` on the ledger ``db``, in its
    own process; returns it and its base URL once ``/healthz`` answers 200."""
    port = free_port()
    env = {**os.environ, "ANTHROPIC_BASE_URL": local_url}
    env.pop("ANTHROPIC_API_KEY", None)
    proc = subprocess.Popen(
        [sys.executable, "-m", "laneway", "serve", "--port", str(port), "--provider",
         "anthropic", "--db", str(db), *options], env=env, stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            if httpx.get(url + "/healthz", timeout=1).status_code == 200:
                return proc, url
        except httpx.HTTPError:
            pass
        if time.monotonic() > deadline or proc.poll() is not None:
            proc.kill()
            raise RuntimeError("laneway serve did not start")
        time.sleep(0.1)
