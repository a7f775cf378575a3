"""Helpers for the native and planner tests (all through the local API and the SDK)."""

from __future__ import annotations

import asyncio
import json
import sqlite3
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import anthropic

from laneway.store import BatchRow, open_store

MODEL = "claude-sonnet-4-6"


def make_input(path: Path, n: int, *, ids: Callable[[int], str] | None = None,
               words: int = 5) -> Path:
    """``n`` short-form jobs; the echo engine answers each with its own prompt."""
    with path.open("w") as f:
        for i in range(n):
            cid = ids(i) if ids else f"doc-{i}"
            prompt = " ".join(f"w{i}x{k}" for k in range(words))
            f.write(json.dumps({"id": cid, "prompt": prompt}) + "\n")
    return path


def read_output(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def strip_ids(value: Any) -> Any:
    """A result without the ids that differ on every call (message and request ids)."""
    if isinstance(value, dict):
        return {k: strip_ids(v) for k, v in value.items() if k not in ("id", "request_id")}
    if isinstance(value, list):
        return [strip_ids(v) for v in value]
    return value


async def server_batches(base_url: str) -> list[Any]:
    """Every batch the local API holds (newest first), through the SDK's ``list``."""
    async with anthropic.AsyncAnthropic(base_url=base_url, api_key="t", max_retries=0) as c:
        return [b async for b in c.messages.batches.list(limit=100)]


def ledger_statuses(db: Path) -> list[tuple[str, str | None]]:
    """``(status, provider_batch_id)`` of the ledger's batches, read without opening the
    store (which would migrate it, racing the process that is creating it)."""
    if not db.exists():
        return []
    try:
        with sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5) as conn:
            return list(conn.execute("SELECT status, provider_batch_id FROM batches"))
    except sqlite3.Error:
        return []


def ledger_batches(db: Path, run_id: str | None = None) -> list[BatchRow]:
    store = open_store(str(db))
    try:
        if run_id is None:
            runs = store.list_runs()
            run_id = runs[0].id if runs else ""
        return store.run_batches(run_id)
    finally:
        store.close()


def wait_until(check: Callable[[], bool], *, timeout_s: float = 20.0, what: str = "") -> None:
    deadline = time.monotonic() + timeout_s
    while not check():
        assert time.monotonic() < deadline, f"timed out waiting for {what or check}"
        time.sleep(0.05)


async def await_until(check: Callable[[], bool], *, timeout_s: float = 20.0,
                      what: str = "") -> None:
    deadline = time.monotonic() + timeout_s
    while not check():
        assert time.monotonic() < deadline, f"timed out waiting for {what or check}"
        await asyncio.sleep(0.05)
