"""The simulated fleet of ``bench/capacity.py``: share-holders against one PostgreSQL.

Each share-holder is what one ``laneway serve`` process asks of the ledger, through
laneway's own code: its own :class:`~laneway.store.AsyncStore` (one store thread, one
engine, as ``serve`` has), a :class:`~laneway.governor.quota.QuotaSharing` that beats its
rate share every second and polls the shared pauses every 0.5 s (``serve``'s schedule),
and ``R`` requests a second (Poisson arrivals), each with the request path of a keyed,
budgeted, rated gateway request (``check_key`` then ``reserve``, timed together) and its
settle grouped every 0.5 s after a simulated upstream of 0.3-1.5 s. ``P`` OS processes
hold the share-holders (``python bench/_capacity_sim.py worker ...``).

The parent (:func:`sweep`) starts PostgreSQL durable (fsync, synchronous_commit and
full_page_writes on) with ``pg_stat_statements``, and for each step (holders, requests
per second each) starts the processes, waits until all are up, measures for a window,
and reads PostgreSQL's CPU (its processes' utime + stime from /proc) and its statement
statistics over the window.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import random
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).parent))

MODEL = "claude-haiku-4-5"
#: The request path's p99 past which a step counts as broken (seconds).
P99_BOUND_S = 0.050
#: PostgreSQL's CPU past which a step counts as broken (cores).
CPU_BOUND = 0.5


def _pct(values: list[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return ordered[max(0, min(len(ordered) - 1, math.ceil(q / 100 * len(ordered)) - 1))]


class Holder:
    """One simulated ``serve`` process (see the module docstring)."""

    def __init__(self, dsn: str, secrets: list[str], rate: float, seed: int,
                 interval_s: float = 1.0) -> None:
        from laneway.store import AsyncStore, open_store

        self.astore = AsyncStore(open_store(dsn))
        self.secrets = secrets
        self.rate = rate
        self.rng = random.Random(seed)
        self.pending: list[Any] = []
        self.request_s: list[float] = []
        self.errors: list[str] = []
        self.sharing: Any = None
        self.governor: Any = None
        self.interval_s = interval_s

    async def start(self) -> None:
        from laneway.governor.buckets import RateLimits
        from laneway.governor.core import Governor
        from laneway.governor.quota import QuotaSharing

        governor = Governor(limits={MODEL: RateLimits(rpm=4000, itpm=2_000_000,
                                                      otpm=400_000)})
        self.governor = governor
        governor.state(MODEL)  # it serves one model: a presence row and the model's
        self.sharing = QuotaSharing(interval_s=self.interval_s, pause_poll_s=0.5)
        await self.sharing.start(self.astore, governor)

    async def request(self, measuring: asyncio.Event) -> None:
        from laneway.store.reservations import Reservation, Settle

        secret = self.rng.choice(self.secrets)
        admitted = self.governor.state(MODEL).admitted  # what its beats say it uses
        for kind, n in (("requests", 1), ("input", 200), ("output", 60)):
            admitted[kind] += n
        t0 = time.monotonic()
        try:
            key, wait_s = await self.astore.check_key(secret)
            assert key is not None and wait_s is None, (key, wait_s)
            row = await self.astore.reserve(Reservation(
                key_id=key.id, model=MODEL, lane="interactive", streamed=True,
                worst_usd=0.002, started_at=time.time(), process=f"sim:{os.getpid()}:x"))
            assert row is not None
        except Exception as exc:  # counted: a step that errors is broken
            self.errors.append(type(exc).__name__ + ": " + str(exc)[:120])
            return
        if measuring.is_set():
            self.request_s.append(time.monotonic() - t0)
        await asyncio.sleep(self.rng.uniform(0.3, 1.5))  # the upstream answers
        self.pending.append(Settle(
            row_id=row, key_id=key.id, worst_usd=0.002, cost_usd=0.0004, status=200,
            input_tokens=200, output_tokens=60, cache_creation_input_tokens=0,
            cache_read_input_tokens=0, queued_s=0.0, ttft_s=0.3, duration_s=0.8,
            upstream_errors=0))

    async def run(self, until: float, measuring: asyncio.Event) -> None:
        tasks: set[asyncio.Task[None]] = set()
        flush = asyncio.create_task(self._flush(until))
        while self.rate > 0 and time.monotonic() < until:
            await asyncio.sleep(self.rng.expovariate(self.rate))
            task = asyncio.create_task(self.request(measuring))
            tasks.add(task)
            task.add_done_callback(tasks.discard)
        await asyncio.gather(*tasks, flush)

    async def _flush(self, until: float) -> None:
        await asyncio.sleep(self.rng.uniform(0, 0.5))
        while time.monotonic() < until + 2.0:
            await asyncio.sleep(0.5)
            settles, self.pending = self.pending, []
            if settles:
                await self.astore.settle_requests(settles)

    async def stop(self) -> None:
        await self.sharing.stop()
        self.astore.close()
        self.astore.store.close()


def _beats_on_request_thread() -> None:
    """As before 571efa2: the beat runs on the process's one store thread."""
    from laneway.governor import quota

    made = quota.LedgerBoard.__init__

    def shared(self: Any, astore: Any, process: str, **kw: Any) -> None:
        made(self, astore, process, **kw)
        self.astore.close()
        self.astore = astore

    quota.LedgerBoard.__init__ = shared  # type: ignore[method-assign]


def _every_beat_locked() -> None:
    """As before 63b9d37: every beat takes the beat lock."""
    from laneway.store import rate_shares

    def locked(store: Any, process: str, **kw: Any) -> Any:
        return rate_shares._beat(store, process, locked=True, **kw)

    rate_shares.heartbeat = locked  # type: ignore[assignment]


def _timed_beats(beats: list[tuple[float, float, float]]) -> None:
    """Record each rate-share beat's (start, seconds, seconds the beat lock was held) on
    the store thread; held: from the lock's grant to the beat's end (its last read, after
    the commit, included)."""
    import threading

    from sqlalchemy import event
    from sqlalchemy.engine import Engine

    from laneway.store import rate_shares

    beat = rate_shares.heartbeat
    locked = threading.local()

    @event.listens_for(Engine, "after_cursor_execute")
    def _seen(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        if "pg_advisory_xact_lock" in statement:
            locked.at = time.monotonic()

    def timed(*args: Any, **kwargs: Any) -> Any:
        t0 = locked.at = time.monotonic()
        try:
            return beat(*args, **kwargs)
        finally:
            end = time.monotonic()
            beats.append((t0, end - t0, end - locked.at))

    rate_shares.heartbeat = timed  # type: ignore[assignment]


async def worker(args: argparse.Namespace, secrets: list[str]) -> dict[str, Any]:
    """Run ``args.holders`` share-holders; after "up", wait for the window's start time
    on stdin, measure ``args.seconds`` from it, print the figures."""
    beats: list[tuple[float, float, float]] = []
    if args.code in ("before", "locked"):
        _every_beat_locked()
    if args.code == "before":
        _beats_on_request_thread()
    _timed_beats(beats)
    holders = [Holder(args.dsn, secrets, args.rate, seed=args.seed * 1000 + i,
                      interval_s=args.interval)
               for i in range(args.holders)]

    async def start_one(i: int, h: Holder) -> None:  # beats spread over the interval
        await asyncio.sleep(i * args.interval / len(holders))
        await h.start()

    await asyncio.gather(*(start_one(i, h) for i, h in enumerate(holders)))
    print("up", flush=True)
    line = await asyncio.to_thread(sys.stdin.readline)
    start_wall = float(line)
    start = time.monotonic() + (start_wall - time.time())
    until = start + args.seconds
    measuring = asyncio.Event()
    cpu0 = os.times()

    async def open_window() -> None:
        await asyncio.sleep(max(0.0, start - time.monotonic()))
        measuring.set()
        for h in holders:
            h.request_s.clear()

    await asyncio.gather(open_window(), *(h.run(until, measuring) for h in holders))
    cpu = os.times()
    for h in holders:
        await h.stop()
    window = [(s, held) for t0, s, held in beats if start <= t0 < until]
    return {"request_s": [s for h in holders for s in h.request_s],
            "beat_s": [s for s, _ in window], "held_s": [held for _, held in window],
            "errors": [e for h in holders for e in h.errors][:5],
            "error_count": sum(len(h.errors) for h in holders),
            "cpu_s": cpu.user + cpu.system - cpu0.user - cpu0.system}


def _worker_main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("mode", choices=["worker"])
    ap.add_argument("--dsn", required=True)
    ap.add_argument("--keys", required=True)
    ap.add_argument("--holders", type=int, required=True)
    ap.add_argument("--rate", type=float, required=True)
    ap.add_argument("--seconds", type=float, required=True)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--code", default="", choices=["", "before", "locked"])
    ap.add_argument("--interval", type=float, default=1.0)
    args = ap.parse_args()
    out = asyncio.run(worker(args, json.loads(Path(args.keys).read_text())))
    print(json.dumps(out), flush=True)


if __name__ == "__main__":
    _worker_main()


# -- the parent ---------------------------------------------------------------------------
#: (share-holders, requests/s each, the code: "" as it is, "before" as at 207e4bf (beats
#: on the request's store thread, every beat under the lock), "locked" (own thread, every
#: beat under the lock); seconds between beats: 1.0 is serve's).
Step = tuple[int, float, str, float]
QUICK_STEPS: list[Step] = [(4, 0.0, "", 1.0), (64, 0.0, "before", 1.0), (64, 0.0, "", 1.0),
                           (256, 0.0, "", 1.0), (64, 1.0, "before", 1.0),
                           (64, 1.0, "", 1.0), (128, 1.0, "", 1.0)]
FULL_STEPS: list[Step] = [(4, 0.0, "", 1.0), (64, 0.0, "before", 1.0),
                          (128, 0.0, "before", 1.0), (64, 0.0, "", 1.0),
                          (128, 0.0, "", 1.0), (256, 0.0, "", 1.0), (384, 0.0, "", 1.0),
                          (64, 1.0, "before", 1.0), (64, 1.0, "locked", 1.0),
                          (64, 1.0, "", 1.0), (128, 1.0, "", 1.0), (256, 1.0, "", 1.0),
                          (64, 3.0, "", 1.0)]
PROCESSES = 4
KEYS = 64


def _stats(dsn: str) -> dict[str, dict[str, float]]:
    """pg_stat_statements by kind of statement: calls, mean and max ms."""
    import psycopg

    kinds = {"COMMIT": "COMMIT", "pg_advisory_xact_lock": "advisory lock (beats)",
             "UPDATE gateway_keys SET sent_at": "UPDATE key rate window",
             "WITH k AS": "reserve (CTE)", "UPDATE gateway_requests": "settle row",
             "INSERT INTO rate_shares": "beat upsert", "FROM rate_shares": "beat live rows",
             "FROM gateway_keys": "key read", "FROM pauses": "pause poll"}
    out: dict[str, dict[str, float]] = {}
    with psycopg.connect(dsn.replace("+psycopg", ""), autocommit=True) as conn:
        rows = conn.execute("SELECT query, calls, total_exec_time, max_exec_time "
                            "FROM pg_stat_statements").fetchall()
    for query, calls, total, most in rows:
        for needle, name in kinds.items():
            if needle in query:
                got = out.setdefault(name, {"calls": 0, "total_ms": 0.0, "max_ms": 0.0})
                got["calls"] += calls
                got["total_ms"] += total
                got["max_ms"] = max(got["max_ms"], most)
                break
    for got in out.values():
        got["mean_ms"] = round(got["total_ms"] / got["calls"], 3) if got["calls"] else 0.0
        got["total_ms"] = round(got["total_ms"], 1)
        got["max_ms"] = round(got["max_ms"], 2)
    return out


def _sql(dsn: str, query: str) -> Any:
    import psycopg

    with psycopg.connect(dsn.replace("+psycopg", ""), autocommit=True) as conn:
        return conn.execute(query).fetchone()


def step(server: Any, keys: Path, holders: int, rate: float, seconds: float, *,
         code: str, interval_s: float) -> dict[str, Any]:
    """One step of the sweep (see the module docstring)."""
    import _pglog

    per = [holders // PROCESSES + (1 if i < holders % PROCESSES else 0)
           for i in range(PROCESSES)]
    procs = [subprocess.Popen(
        [sys.executable, __file__, "worker", "--dsn", server.dsn, "--keys", str(keys),
         "--holders", str(n), "--rate", str(rate), "--seconds", str(seconds),
         "--seed", str(i), "--interval", str(interval_s),
         "--code", code], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        for i, n in enumerate(per)]
    try:
        for p in procs:
            assert p.stdout is not None
            if p.stdout.readline().strip() != "up":
                raise RuntimeError("a simulated process did not start")
        start = time.time() + 2.0
        for p in procs:
            assert p.stdin is not None
            p.stdin.write(f"{start}\n")
            p.stdin.flush()
        time.sleep(max(0.0, start - time.time()))
        _sql(server.dsn, "SELECT pg_stat_statements_reset(), pg_stat_reset_shared('wal')")
        cpu0 = _pglog.cpu_s(server)
        time.sleep(seconds / 2)
        connections = int(_sql(server.dsn, "SELECT count(*) FROM pg_stat_activity "
                                           "WHERE backend_type = 'client backend'")[0])
        time.sleep(seconds / 2)
        cpu = _pglog.cpu_s(server) - cpu0
        stats = _stats(server.dsn)
        wal = _sql(server.dsn, "SELECT wal_records, wal_bytes, wal_sync, wal_sync_time, "
                               "wal_write FROM pg_stat_wal")
        outs = [json.loads((p.communicate(timeout=120)[0] or "{}").strip().splitlines()[-1])
                for p in procs]
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()
    out = _summary(holders, rate, seconds, cpu, connections, stats, outs)
    out["code"] = code or "now"
    out["locked_beats_per_s"] = round(
        stats.get("advisory lock (beats)", {}).get("calls", 0) / seconds, 1)
    out["beat_interval_s"] = interval_s
    if out["beats_per_s"] >= 0.9 * holders / interval_s and "beats behind" in out["broke"]:
        out["broke"].remove("beats behind")
    out["wal"] = {"bytes_per_s": round(float(wal[1]) / seconds),
                  "fsyncs_per_s": round(int(wal[2]) / seconds, 1),
                  "fsync_mean_ms": round(float(wal[3]) / max(1, int(wal[2])), 3)}
    return out


def _summary(holders: int, rate: float, seconds: float, cpu: float, connections: int,
             stats: dict[str, Any], outs: list[dict[str, Any]]) -> dict[str, Any]:
    req = [s for o in outs for s in o["request_s"]]
    beats = [s for o in outs for s in o["beat_s"]]
    held = [s for o in outs for s in o["held_s"]]
    p99 = _pct(req, 99)
    out = {"holders": holders, "rate_per_holder": rate, "seconds": seconds,
           "requests_per_s": round(len(req) / seconds, 1),
           "beats_per_s": round(len(beats) / seconds, 1),
           "pg_cpu_cores": round(cpu / seconds, 3),
           "client_cpu_cores": round(sum(o["cpu_s"] for o in outs) / seconds, 2),
           "connections": connections,
           "request_p50_ms": _ms(_pct(req, 50)), "request_p99_ms": _ms(p99),
           "beat_p50_ms": _ms(_pct(beats, 50)), "beat_p99_ms": _ms(_pct(beats, 99)),
           "lock_held_p50_ms": _ms(_pct(held, 50)),
           "lock_held_mean_ms": _ms(sum(held) / len(held) if held else None),
           "errors": sum(o["error_count"] for o in outs),
           "error_samples": [e for o in outs for e in o["errors"]][:3],
           "statements": stats, "load": os.getloadavg()}
    broke = []
    if out["pg_cpu_cores"] > CPU_BOUND:
        broke.append("PostgreSQL CPU")
    if p99 is not None and p99 > P99_BOUND_S:
        broke.append("request p99")
    if out["beats_per_s"] < 0.9 * holders:
        broke.append("beats behind")
    if out["errors"]:
        broke.append("errors")
    out["broke"] = broke
    return out


def _ms(s: float | None) -> float | None:
    return None if s is None else round(s * 1000, 1)


def sweep(*, quick: bool) -> dict[str, Any]:
    """Every step on one durable PostgreSQL; prints the capacity table."""
    import _pglog
    from laneway.store import open_store

    server = _pglog.start(log_all=False, stat_statements=True)
    try:
        store = open_store(server.dsn)
        secrets = [store.create_key(f"sim-{i}", budget_usd=1e6, rpm=6000)[1]
                   for i in range(KEYS)]
        store.close()
        keys = server.root.parent / f"{server.root.name}-keys.json"
        keys.write_text(json.dumps(secrets))
        seconds = 8.0 if quick else 15.0
        steps = []
        for holders, rate, code, interval_s in QUICK_STEPS if quick else FULL_STEPS:
            steps.append(step(server, keys, holders, rate, seconds, code=code,
                              interval_s=interval_s))
            print_capacity(steps[-1:], header=len(steps) == 1)
        keys.unlink()
    finally:
        server.stop()
    derived = derive(steps)
    from _common import print_table

    print_table("derived", ["figure", "value"], [[k, v] for k, v in derived.items()])
    return {"processes": PROCESSES, "keys": KEYS, "p99_bound_ms": P99_BOUND_S * 1000,
            "cpu_bound_cores": CPU_BOUND, "steps": steps, "derived": derived,
            "fsync": fsync_rate()}


def fsync_rate() -> dict[str, float]:
    """This disk's fdatasync of one 8 kB write (pg_test_fsync, 1 s): PostgreSQL's WAL
    flush, the floor under every commit here."""
    import glob
    import re
    import tempfile

    tool = sorted(glob.glob("/usr/lib/postgresql/*/bin/pg_test_fsync"))
    if not tool:
        return {}
    with tempfile.TemporaryDirectory(dir=Path(__file__).parent) as tmp:
        out = subprocess.run([tool[-1], "-s", "1", "-f", f"{tmp}/f"], capture_output=True,
                             text=True, timeout=120).stdout
    m = re.search(r"fdatasync\s+([\d.]+) ops/sec\s+(\d+) usecs/op", out)
    return {"fdatasync_ops_per_s": float(m.group(1)),
            "fdatasync_us": float(m.group(2))} if m else {}


def print_capacity(steps: list[dict[str, Any]], *, header: bool = True) -> None:
    from _common import print_table

    rows = [[s["holders"], s["rate_per_holder"], s["beat_interval_s"],
             s["code"],
             s["beats_per_s"], s["locked_beats_per_s"], s["requests_per_s"],
             s["wal"]["fsyncs_per_s"],
             s["statements"].get("advisory lock (beats)", {}).get("mean_ms"),
             s["lock_held_mean_ms"],
             f"{s['pg_cpu_cores']:.2f}", f"{s['client_cpu_cores']:.2f}", s["connections"],
             s["request_p50_ms"], s["request_p99_ms"], s["beat_p50_ms"], s["beat_p99_ms"],
             ", ".join(s["broke"]) or "-", f"{s['load'][0]:.1f}"] for s in steps]
    print_table("", ["holders", "req/s each", "code", "WAL bytes/s", "fsync ms",
                     "server ms: beat lock wait", "key rate window", "reserve", "settle row",
                     "beat live rows"],
                [[s["holders"], s["rate_per_holder"],
                  s["code"],
                  s["wal"]["bytes_per_s"], s["wal"]["fsync_mean_ms"],
                  *[s["statements"].get(k, {}).get("mean_ms") for k in (
                      "advisory lock (beats)", "UPDATE key rate window", "reserve (CTE)",
                      "settle row", "beat live rows")]] for s in steps])
    print_table("simulated fleet on one durable PostgreSQL" if header else "",
                ["holders", "req/s each", "beat every s", "code", "beats/s",
                 "locked beats/s", "req/s", "fsyncs/s",
                 "beat lock wait ms", "lock held ms", "PG cores", "client cores",
                 "conns", "req p50 ms", "req p99 ms", "beat p50 ms", "beat p99 ms",
                 "broke", "load"], rows)


def derive(steps: list[dict[str, Any]]) -> dict[str, Any]:
    """PostgreSQL's CPU per beat (beats-only steps, by holders) and per request (a
    request step's CPU less its beats at the per-beat cost of the nearest beats-only
    step), and the beat lock's ceiling (1 / the time it is held)."""
    now = [s for s in steps if s["code"] == "now" and s["beat_interval_s"] == 1.0]
    per_beat = {s["holders"]: s["pg_cpu_cores"] * 1000 / s["beats_per_s"]
                for s in now if s["rate_per_holder"] == 0 and s["beats_per_s"]}
    ceiling = {s["holders"]: round(1000 / s["lock_held_mean_ms"], 1)
               for s in steps if s["rate_per_holder"] == 0 and s["lock_held_mean_ms"]
               and s["code"] == "before"}
    per_request = []
    for s in now:
        if not s["rate_per_holder"] or not s["requests_per_s"] or not per_beat:
            continue
        near = min(per_beat, key=lambda n: abs(n - s["holders"]))
        beats_ms = s["beats_per_s"] * per_beat[near]
        per_request.append(round((s["pg_cpu_cores"] * 1000 - beats_ms)
                                 / s["requests_per_s"], 3))
    return {"pg_cpu_ms_per_beat": {k: round(v, 3) for k, v in per_beat.items()},
            "beat_lock_ceiling_per_s": ceiling,
            "pg_cpu_ms_per_request": per_request,
            "note": "beat lock ceiling: 1 / its hold time, from the steps where every beat "
                    "takes it (code 'before')"}
