"""How far one PostgreSQL carries a laneway fleet (issue 29 item 6).

Part 1, statements: a real ``laneway serve`` (keyed, budgeted, rated requests; plain and
streamed), a ``laneway run --mode realtime`` and a ``laneway worker`` against a private
PostgreSQL that logs every statement with its time and backend; the statements are
grouped into transactions per backend and counted per request / job / beat, and a
gateway request's are split into those before the upstream call (the upstream answers
after 1 s) and after it.

Part 2, a simulated fleet (``_capacity_sim.py``): share-holders in a few OS processes
that beat their rate share as ``serve`` does and make a gateway request's ledger
statements through laneway's own store code, against one PostgreSQL with fsync and
synchronous_commit on; PostgreSQL's CPU and the request path's latency per step.

    .venv/bin/python bench/capacity.py [--quick]

Prints tables and writes ``bench/results/capacity.json``.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from collections import Counter, defaultdict
from collections.abc import Iterator
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).parent))

import anthropic

import _capacity_sim
import _pglog
from _common import print_table, save, serve_process, stop_process
from laneway.local import LocalConfig, start_local
from laneway.store import open_store

LANEWAY = [sys.executable, "-m", "laneway"]
MODEL = "claude-haiku-4-5"
#: The upstream's time to first token in part 1.
UPSTREAM_S = 1.0
_TABLE = re.compile(r'\b(?:FROM|INTO|UPDATE|JOIN)\s+"?(\w+)', re.I)
#: What a background transaction is, by a table it names.
_BACKGROUND = {"rate_shares": "rate-share beat", "pauses": "pause poll",
               "gateway_batches": "batch driver poll", "holders": "holder upkeep"}


def _label(sql: str) -> str:
    """``VERB table`` of one statement (``pg_advisory_xact_lock`` and the clock kept)."""
    verb = sql.split(None, 1)[0].upper() if sql.strip() else "?"
    if "pg_advisory" in sql:
        return "SELECT pg_advisory_xact_lock"
    if "clock_timestamp" in sql and "rate_shares" not in sql:
        return "SELECT clock"
    m = _TABLE.search(sql)
    return f"{verb} {m.group(1)}" if m else verb


def transactions(logged: list[_pglog.Logged]) -> list[list[_pglog.Logged]]:
    """Statements grouped per backend, BEGIN to COMMIT/ROLLBACK, in the order each
    began; the pool's liveness ping (``;``) and psycopg's ``DEALLOCATE`` go with the
    backend's next transaction (they are its checkout's cost)."""
    open_: dict[int, list[_pglog.Logged]] = {}
    loose: dict[int, list[_pglog.Logged]] = defaultdict(list)
    done: list[list[_pglog.Logged]] = []
    for s in logged:
        verb = s.sql.split(None, 1)[0].upper() if s.sql.strip() else ""
        if verb == "BEGIN":
            if s.pid in open_:
                done.append(open_.pop(s.pid))
            open_[s.pid] = [*loose.pop(s.pid, []), s]
        elif s.pid in open_:
            open_[s.pid].append(s)
            if verb in ("COMMIT", "ROLLBACK"):
                done.append(open_.pop(s.pid))
        elif verb in (";", "DEALLOCATE"):
            loose[s.pid].append(s)
        else:
            done.append([*loose.pop(s.pid, []), s])
    done.extend(open_.values())
    return sorted(done, key=began)


def began(tx: list[_pglog.Logged]) -> float:
    """When a transaction began (its BEGIN: the ping before it may be much earlier)."""
    return next((s.at for s in tx if s.sql.strip() != ";"
                 and not s.sql.startswith("DEALLOCATE")), tx[-1].at)


def kind_of(tx: list[_pglog.Logged]) -> str | None:
    """The background activity a transaction is, if any."""
    for s in tx:
        for table, kind in _BACKGROUND.items():
            if table in s.sql:
                return kind
    return None


def shape(tx: list[_pglog.Logged]) -> str:
    """A transaction's statements, BEGIN/COMMIT left out: ``A + B``."""
    inner = [_label(s.sql) for s in tx
             if _label(s.sql) not in ("BEGIN", "COMMIT", ";", "DEALLOCATE")]
    if any(s.sql.strip() == ";" for s in tx):
        inner.insert(0, "ping")
    return " + ".join(inner) if inner else "BEGIN/COMMIT"


def count(txs: list[list[_pglog.Logged]]) -> tuple[int, int]:
    """(statements, transactions that wrote: a COMMIT after a write)."""
    writes = sum(1 for t in txs if any(_label(s.sql).split()[0] in ("INSERT", "UPDATE",
                                                                    "DELETE", "WITH")
                                       for s in t))
    return sum(len(t) for t in txs), writes


@contextlib.contextmanager
def stack() -> Iterator[tuple[Any, str, str]]:
    """A logging PostgreSQL, an upstream (first token after UPSTREAM_S), a ledger key."""
    server = _pglog.start(log_all=True)
    local = start_local(LocalConfig(ttft_ms=UPSTREAM_S * 1000))
    try:
        store = open_store(server.dsn)
        _key, secret = store.create_key("capacity", budget_usd=1000.0, rpm=100_000)
        store.close()
        yield server, local.base_url, secret
    finally:
        local.stop()
        server.stop()


def gateway_requests(server: Any, upstream: str, secret: str, n: int) -> dict[str, Any]:
    """Per request (plain, streamed): statements before the upstream is called and after;
    and the background's per second."""
    proc, url = serve_process(upstream, server.dsn)
    client = anthropic.Anthropic(base_url=url, api_key=secret, max_retries=0)
    try:
        time.sleep(3.0)  # start-up done
        idle_from = time.time()
        time.sleep(5.0)
        idle_to = time.time()
        windows: dict[str, list[tuple[float, float]]] = {"plain": [], "streamed": []}
        for mode in windows:
            for i in range(n):
                t0 = time.time()
                body = {"model": MODEL, "max_tokens": 16,
                        "messages": [{"role": "user", "content": f"hello {i}"}]}
                if mode == "plain":
                    client.messages.create(**body)  # type: ignore[call-overload]
                else:
                    with client.messages.stream(**body) as s:  # type: ignore[arg-type]
                        s.get_final_message()
                windows[mode].append((t0, time.time()))
                time.sleep(2.0)  # the settle is grouped every 0.5 s
        end = time.time()
    finally:
        stop_process(proc)
    txs = transactions(_pglog.statements(server, idle_from - 1, end + 1))
    idle = [t for t in txs if idle_from <= began(t) < idle_to]
    background: dict[str, list[int]] = defaultdict(list)
    for t in idle:
        background[kind_of(t) or shape(t)].append(len(t))
    out: dict[str, Any] = {"background_per_s": {
        k: {"transactions_per_s": round(len(v) / (idle_to - idle_from), 2),
            "statements_per_tx": round(sum(v) / len(v), 1)} for k, v in background.items()}}
    for mode, spans in windows.items():
        before: Counter[str] = Counter()
        after: Counter[str] = Counter()
        stmts = {"before": 0, "after": 0}
        for i, (t0, t1) in enumerate(spans):
            # The upstream answers after UPSTREAM_S: what the gateway does before calling
            # it is done long before the middle of the request; nothing is done while
            # it waits. A request's window runs to the next request's start.
            nxt = spans[i + 1][0] if i + 1 < len(spans) else t1 + 2.0
            for t in txs:
                if kind_of(t) is not None or not t0 <= began(t) < nxt:
                    continue
                side = "before" if began(t) < (t0 + t1) / 2 else "after"
                (before if side == "before" else after)[shape(t)] += 1
                stmts[side] += len(t)
        out[mode] = {"before_tx": {k: v / n for k, v in before.items()},
                     "after_tx": {k: v / n for k, v in after.items()},
                     "statements_before": stmts["before"] / n,
                     "statements_after": stmts["after"] / n}
    return out


def _jobs(path: Path, n: int) -> Path:
    path.write_text("".join(json.dumps({"custom_id": f"j{i}", "params": {
        "model": MODEL, "max_tokens": 8, "messages": [{"role": "user", "content": f"q {i}"}]}})
        + "\n" for i in range(n)))
    return path


def per_job(server: Any, upstream: str, n: int) -> dict[str, Any]:
    """Statements per job of ``laneway run --mode realtime --budget`` and of a ``laneway
    worker`` on a run enqueued with ``--no-work`` (beats and polls counted apart)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("ANTHROPIC_")}
    env["ANTHROPIC_BASE_URL"] = upstream
    out: dict[str, Any] = {}
    with tempfile.TemporaryDirectory() as tmp:
        jobs = _jobs(Path(tmp) / "in.jsonl", n)
        for what in ("run", "worker"):
            t0 = time.time()
            if what == "run":
                cmd = [*LANEWAY, "run", str(jobs), "-o", f"{tmp}/out.jsonl", "--db",
                       server.dsn, "--mode", "realtime", "--budget", "100", "--run",
                       "cap-run", "--concurrency", "16"]
            else:
                subprocess.run([*LANEWAY, "run", str(jobs), "--db", server.dsn, "--run",
                                "cap-work", "--no-work", "--mode", "realtime"], env=env,
                               check=True, capture_output=True)
                t0 = time.time()
                cmd = [*LANEWAY, "worker", "--db", server.dsn, "--run", "cap-work",
                       "--concurrency", "16", "-q"]
            subprocess.run(cmd, env=env, check=True, capture_output=True)
            txs = transactions(_pglog.statements(server, t0, time.time() + 1))
            kinds: Counter[str] = Counter()
            work = [t for t in txs if kind_of(t) is None]
            for t in work:
                kinds[shape(t)] += 1
            stmts, writes = count(work)
            out[what] = {"statements_per_job": round(stmts / n, 2),
                         "commits_per_job": round(writes / n, 3),
                         "top": dict(kinds.most_common(8))}
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="a shorter run (~5 minutes)")
    ap.add_argument("--requests", type=int, default=10)
    ap.add_argument("--jobs", type=int, default=400)
    args = ap.parse_args()
    started = time.time()
    with stack() as (server, upstream, secret):
        gw = gateway_requests(server, upstream, secret, 4 if args.quick else args.requests)
        jobs = per_job(server, upstream, 200 if args.quick else args.jobs)
    print(f"(part 1 took {time.time() - started:.0f} s)")
    print_statements(gw, jobs)
    sim = _capacity_sim.sweep(quick=args.quick)
    save("capacity", {"gateway_request": gw, "jobs": jobs, "fleet": sim,
                      "wall_s": round(time.time() - started, 1)})


def print_statements(gw: dict[str, Any], jobs: dict[str, Any]) -> None:
    rows = []
    for mode in ("plain", "streamed"):
        for side in ("before", "after"):
            for tx, per in gw[mode][f"{side}_tx"].items():
                rows.append([mode, f"{side} upstream", tx, f"{per:.2f}"])
        rows.append([mode, "total statements", f"before {gw[mode]['statements_before']:.1f}"
                     f", after {gw[mode]['statements_after']:.1f}", ""])
    print_table("one gateway request (keyed, budgeted, rated): transactions per request",
                ["request", "when", "transaction (BEGIN/COMMIT left out)", "per request"],
                rows)
    print_table("background of one idle serve process",
                ["what", "transactions/s", "statements/transaction"],
                [[k, v["transactions_per_s"], v["statements_per_tx"]]
                 for k, v in gw["background_per_s"].items()])
    print_table("per job (beats and polls apart)",
                ["process", "statements/job", "commits/job", "commonest transactions"],
                [[k, v["statements_per_job"], v["commits_per_job"],
                  "; ".join(f"{t} x{c}" for t, c in list(v["top"].items())[:4])]
                 for k, v in jobs.items()])


if __name__ == "__main__":
    main()
