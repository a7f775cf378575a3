"""The gateway's money promises (issue 24, goals 1, 2, 3, 6, 9), before and after, side by
side in one run.

``laneway local --engine echo`` (the upstream) and ``laneway serve --provider anthropic``
in front of it, each in its own process of this Python with ``PYTHONPATH`` set to a
checkout's ``src``: ``--before`` (e.g. a ``git worktree`` of the commit before) and
``--after`` (default: this tree's). ``claude-haiku-4-5`` prices ($1/$5 per million
tokens). What the upstream billed is counted from the upstream itself: its completed
answers (``/v1/laneway/completions``) times what one such answer costs (each scenario's
requests are alike, so are their answers).

money ($0.01 key, first use):  50 requests at once on one serve; the same on
``--workers 4``; the same over two serve processes on one PostgreSQL; streams left
after their first chunk (20); a 100-request batch on a nearly spent key.
rate: an rpm-10 key, 40 requests at once on ``--workers 4``: how many the upstream got
(all within a few seconds: the most in any 60 s).
crash: kill -9 of serve with 50 streams in flight: the rows after the restart.
hop: 200 streams (10 at a time) through the gateway against the same straight to the
upstream: the time added (p50/p99) and the serve's CPU per stream, on SQLite and
PostgreSQL, with a budgeted key that has a rate (1,000 rpm); before and after alternate,
3 rounds, the median of each figure.

    git worktree add /tmp/lw-before <commit>
    .venv/bin/python bench/gateway_contract.py --before /tmp/lw-before/src [--only ...]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
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

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "tests"))
MODEL = "claude-haiku-4-5"
IN_USD, OUT_USD = 1.0 / 1e6, 5.0 / 1e6
LONG = [{"role": "user", "content": "word " * 200}]


def _env(src: Path, **extra: str) -> dict[str, str]:
    return checkout_env(src, COLUMNS="200", **extra)


def _wait(url: str, proc: subprocess.Popen[bytes]) -> None:
    wait_up(url, proc, url, timeout_s=90)


def _stop(proc: subprocess.Popen[bytes], sig: int = signal.SIGTERM) -> None:
    stop_process(proc, sig, timeout_s=15)


@contextmanager
def upstream(src: Path, *args: str) -> Iterator[str]:
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "laneway", "local", "--engine", "echo",
                             "--port", str(port), *args], env=_env(src),
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    try:
        _wait(url + "/v1/models", proc)
        yield url
    finally:
        _stop(proc)


def serve_proc(src: Path, up: str, db: str, port: int, *args: str) -> subprocess.Popen[bytes]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "laneway", "serve", "--provider", "anthropic", "--port",
         str(port), "--db", db, "--model", MODEL, *args],
        env=_env(src, ANTHROPIC_API_KEY="k", ANTHROPIC_BASE_URL=up),
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    _wait(f"http://127.0.0.1:{port}/healthz", proc)
    return proc


@contextmanager
def serving(src: Path, up: str, db: str, *args: str, copies: int = 1) -> Iterator[list[str]]:
    ports = [free_port() for _ in range(copies)]
    procs = [serve_proc(src, up, db, p, *args) for p in ports]
    try:
        yield [f"http://127.0.0.1:{p}" for p in ports]
    finally:
        for proc in procs:
            _stop(proc, signal.SIGINT)


def laneway(src: Path, *args: str) -> str:
    return subprocess.run([sys.executable, "-m", "laneway", *args], env=_env(src),
                          check=True, capture_output=True, text=True).stdout


def key_json(src: Path, db: str, name: str) -> dict[str, Any]:
    keys = json.loads(laneway(src, "keys", "list", "--all", "--json", "--db", db))
    found: dict[str, Any] = next(k for k in keys if k["name"] == name)
    return found


def completed(up: str) -> int:
    return int(httpx.get(up + "/v1/laneway/completions", timeout=10).json()["completed"])


def answer_usd(up: str, messages: list[dict[str, Any]], max_tokens: int) -> float:
    """What one answer of this request costs, asked of the upstream itself."""
    m = anthropic.Anthropic(base_url=up, api_key="k", max_retries=0).messages.create(
        model=MODEL, max_tokens=max_tokens, messages=messages)  # type: ignore[arg-type]
    return m.usage.input_tokens * IN_USD + m.usage.output_tokens * OUT_USD


async def burst(urls: list[str], secret: str, n: int, **params: Any) -> dict[str, int]:
    clients = [anthropic.AsyncAnthropic(base_url=u, api_key=secret, max_retries=0,
                                        timeout=120) for u in urls]
    out = await asyncio.gather(*[clients[i % len(clients)].messages.create(
        model=MODEL, **params) for i in range(n)], return_exceptions=True)
    for c in clients:
        await c.close()
    counts: dict[str, int] = {}
    for o in out:
        name = "200" if not isinstance(o, BaseException) else str(
            getattr(o, "status_code", type(o).__name__))
        counts[name] = counts.get(name, 0) + 1
    return counts


@contextmanager
def ledger(kind: str, tmp: Path) -> Iterator[str]:
    if kind == "sqlite":
        yield str(tmp / f"ledger-{time.monotonic_ns()}.db")
        return
    import pgserver

    server = pgserver.find_postgres()
    name, dsn = pgserver.new_schema(server)
    try:
        yield dsn
    finally:
        pgserver.drop_schema(server, name)


def money_burst(src: Path, tmp: Path, *, workers: int = 1, copies: int = 1,
                kind: str = "sqlite") -> dict[str, Any]:
    with upstream(src) as up, ledger(kind, tmp) as db:
        secret = laneway(src, "keys", "create", "capped", "--budget-usd", "0.01", "--db",
                         db).strip()
        each = answer_usd(up, LONG, 300)
        base = completed(up)
        args = ("--workers", str(workers)) if workers > 1 else ()
        with serving(src, up, db, *args, copies=copies) as urls:
            answers = asyncio.run(burst(urls, secret, 50, max_tokens=300, messages=LONG))
            time.sleep(1.5)
        billed = (completed(up) - base) * each
        return {"answers": answers, "billed_usd": round(billed, 5),
                "ledger_spent_usd": round(key_json(src, db, "capped")["spent_usd"], 5),
                "within_budget": billed <= 0.01}


def streams_left(src: Path, tmp: Path) -> dict[str, Any]:
    with upstream(src, "--token-ms", "20") as up, ledger("sqlite", tmp) as db:
        secret = laneway(src, "keys", "create", "leaver", "--budget-usd", "0.01", "--db",
                         db).strip()
        body = {"model": MODEL, "max_tokens": 300, "stream": True, "messages": LONG}
        each = answer_usd(up, LONG, 300)
        base = completed(up)
        statuses = []
        with serving(src, up, db) as (url,):
            for _ in range(20):
                with httpx.stream("POST", url + "/v1/messages", json=body, timeout=60,
                                  headers={"x-api-key": secret,
                                           "anthropic-version": "2023-06-01"}) as r:
                    statuses.append(r.status_code)
                    if r.status_code == 200:
                        next(r.iter_bytes())
            time.sleep(8)  # what the upstream would finish, it has
        billed = (completed(up) - base) * each
        spent = key_json(src, db, "leaver")["spent_usd"]
        return {"left": statuses.count(200), "refused": len(statuses) - statuses.count(200),
                "billed_usd": round(billed, 5), "ledger_spent_usd": round(spent, 5),
                "charged_covers_billed": spent >= billed - 1e-9,
                "within_budget": max(spent, billed) <= 0.01 + 1e-9}


def batch_nearly_spent(src: Path, tmp: Path) -> dict[str, Any]:
    with upstream(src, "--batch-min-s", "0.2") as up, ledger("sqlite", tmp) as db:
        secret = laneway(src, "keys", "create", "batcher", "--budget-usd", "0.01", "--db",
                         db).strip()
        reqs = [{"custom_id": f"q-{i}", "params": {"model": MODEL, "max_tokens": 300,
                                                   "messages": LONG}} for i in range(100)]
        with serving(src, up, db) as (url,):
            client = anthropic.Anthropic(base_url=url, api_key=secret, max_retries=0)
            n = 0
            try:
                for _ in range(20):  # spend it down, one request at a time
                    client.messages.create(model=MODEL, max_tokens=300, messages=LONG)  # type: ignore[arg-type]
                    n += 1
            except anthropic.PermissionDeniedError:
                pass
            time.sleep(1.0)
            before = key_json(src, db, "batcher")["spent_usd"]
            try:
                batch = client.messages.batches.create(requests=reqs)  # type: ignore[arg-type]
                created: Any = True
                deadline = time.monotonic() + 120
                while client.messages.batches.retrieve(batch.id).processing_status != "ended":
                    if time.monotonic() > deadline:
                        created = "did not end in 120 s"
                        break
                    time.sleep(0.5)
                time.sleep(1.0)
            except anthropic.APIStatusError as exc:
                created = f"refused {exc.status_code}"
        after = key_json(src, db, "batcher")["spent_usd"]
        return {"requests_before_403": n, "spent_before_usd": round(before, 5),
                "batch_create": created, "spent_after_usd": round(after, 5),
                "within_budget": after <= 0.01 + 1e-9}


def rpm_workers(src: Path, tmp: Path) -> dict[str, Any]:
    with upstream(src) as up, ledger("sqlite", tmp) as db:
        secret = laneway(src, "keys", "create", "slow", "--rpm", "10", "--db", db).strip()
        base = completed(up)
        with serving(src, up, db, "--workers", "4") as (url,):
            answers = asyncio.run(burst([url], secret, 40, max_tokens=5, messages=LONG))
        return {"answers": answers, "sent_upstream_in_60s": completed(up) - base}


def kill9(src: Path, tmp: Path, streams: int = 50) -> dict[str, Any]:
    with upstream(src, "--token-ms", "50") as up, ledger("sqlite", tmp) as db:
        secret = laneway(src, "keys", "create", "crashy", "--budget-usd", "50", "--db",
                         db).strip()
        port = free_port()
        proc = serve_proc(src, up, db, port)
        url = f"http://127.0.0.1:{port}"

        async def hold() -> None:
            killed = asyncio.Event()
            async with httpx.AsyncClient(timeout=60) as http:
                async def one() -> None:
                    body = {"model": MODEL, "max_tokens": 400, "stream": True,
                            "messages": LONG}
                    async with http.stream("POST", url + "/v1/messages", json=body,
                                           headers={"x-api-key": secret,
                                                    "anthropic-version": "2023-06-01"}
                                           ) as r:
                        async for _ in r.aiter_bytes():
                            await killed.wait()  # in flight, until the kill
                            return
                tasks = [asyncio.create_task(one()) for _ in range(streams)]
                await asyncio.sleep(3)
                proc.send_signal(signal.SIGKILL)
                killed.set()
                await asyncio.gather(*tasks, return_exceptions=True)

        asyncio.run(hold())
        proc.wait()
        proc = serve_proc(src, up, db, port)
        _stop(proc, signal.SIGINT)
        import sqlalchemy as sa

        engine = sa.create_engine(f"sqlite:///{db}")
        with engine.connect() as conn:
            cols = {c["name"] for c in sa.inspect(conn).get_columns("gateway_requests")}
            q = "SELECT state, COUNT(*) FROM gateway_requests GROUP BY state" \
                if "state" in cols else "SELECT 'done', COUNT(*) FROM gateway_requests"
            states = {str(s): int(n) for s, n in conn.execute(sa.text(q))}
        engine.dispose()
        key = key_json(src, db, "crashy")
        return {"streams_in_flight": streams, "rows_after_restart": sum(states.values()),
                "states": states, "held_usd": round(key.get("held_usd", 0.0), 5)}


def _a_worker(pid: int) -> int:
    """The pid of one of a ``--workers`` server's worker processes."""
    kids = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    return next(int(k) for k in kids
                if b"spawn_main" in Path(f"/proc/{k}/cmdline").read_bytes())


def kill9_worker(src: Path, tmp: Path, streams: int = 20) -> dict[str, Any]:
    """``serve --workers 2``, ``streams`` in flight, one worker killed with -9: the rows
    once the server has stopped (uvicorn starts a new worker, which settles the dead
    one's)."""
    with upstream(src, "--token-ms", "50") as up, ledger("sqlite", tmp) as db:
        secret = laneway(src, "keys", "create", "w", "--budget-usd", "50", "--db",
                         db).strip()
        port = free_port()
        proc = serve_proc(src, up, db, port, "--workers", "2")
        url = f"http://127.0.0.1:{port}"

        async def hold() -> None:
            async with httpx.AsyncClient(timeout=60) as http:
                async def one() -> None:
                    body = {"model": MODEL, "max_tokens": 100, "stream": True,
                            "messages": LONG}
                    async with http.stream("POST", url + "/v1/messages", json=body,
                                           headers={"x-api-key": secret,
                                                    "anthropic-version": "2023-06-01"}
                                           ) as r:
                        async for _ in r.aiter_bytes():
                            pass
                tasks = [asyncio.create_task(one()) for _ in range(streams)]
                await asyncio.sleep(2)
                os.kill(_a_worker(proc.pid), signal.SIGKILL)
                await asyncio.gather(*tasks, return_exceptions=True)

        asyncio.run(hold())
        time.sleep(6)  # the supervisor notices, a new worker starts and settles
        _stop(proc, signal.SIGINT)
        import sqlalchemy as sa

        engine = sa.create_engine(f"sqlite:///{db}")
        with engine.connect() as conn:
            total = int(conn.scalar(sa.text("SELECT COUNT(*) FROM gateway_requests")) or 0)
        engine.dispose()
        return {"streams": streams, "rows": total}


async def _streams(url: str, secret: str, n: int, conc: int) -> list[float]:
    took: list[float] = []
    sem = asyncio.Semaphore(conc)
    async with anthropic.AsyncAnthropic(base_url=url, api_key=secret, max_retries=0) as c:
        async def one() -> None:
            async with sem:
                t = time.monotonic()
                async with c.messages.stream(model=MODEL, max_tokens=20,
                                             messages=LONG) as s:  # type: ignore[arg-type]
                    await s.get_final_message()
                took.append(time.monotonic() - t)
        await asyncio.gather(*[one() for _ in range(n)])
    return took


def _cpu_s(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def hop(src: Path, tmp: Path, kind: str, n: int = 200) -> dict[str, Any]:
    with upstream(src) as up, ledger(kind, tmp) as db:
        secret = laneway(src, "keys", "create", "hop", "--budget-usd", "1000", "--rpm",
                         "1000", "--db", db).strip()
        direct = asyncio.run(_streams(up, "k", n, 10))
        port = free_port()
        proc = serve_proc(src, up, db, port)
        try:
            url = f"http://127.0.0.1:{port}"
            asyncio.run(_streams(url, secret, 20, 10))  # warm
            cpu0 = _cpu_s(proc.pid)
            through = asyncio.run(_streams(url, secret, n, 10))
            cpu = _cpu_s(proc.pid) - cpu0
        finally:
            _stop(proc, signal.SIGINT)
    return {"ledger": kind,
            "added_p50_ms": round((percentile(through, 50) - percentile(direct, 50)) * 1e3, 1),
            "added_p99_ms": round((percentile(through, 99) - percentile(direct, 99)) * 1e3, 1),
            "serve_cpu_ms_per_stream": round(cpu / n * 1e3, 2)}


SCENARIOS = {
    "first_use_50": lambda s, t: money_burst(s, t),
    "workers_4": lambda s, t: money_burst(s, t, workers=4),
    "two_serve_pg": lambda s, t: money_burst(s, t, copies=2, kind="postgresql"),
    "streams_left": streams_left,
    "batch_nearly_spent": batch_nearly_spent,
    "rpm10_workers_4": rpm_workers,
    "kill9_50_streams": kill9,
    "kill9_one_of_2_workers": kill9_worker,
    "hop_sqlite": lambda s, t: hop(s, t, "sqlite"),
    "hop_postgresql": lambda s, t: hop(s, t, "postgresql"),
}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--before", type=Path, required=True, help="the older checkout's src")
    ap.add_argument("--after", type=Path, default=HERE.parent / "src")
    ap.add_argument("--only", nargs="*", choices=list(SCENARIOS))
    ap.add_argument("--name", default="gateway_contract")
    args = ap.parse_args()
    out: dict[str, Any] = {"before": str(args.before.resolve()),
                           "after": str(args.after.resolve())}
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.only or list(SCENARIOS):
            row: dict[str, Any] = {}
            # The hop is timed: before and after alternate, 3 rounds, the median of each.
            rounds: dict[str, list[dict[str, Any]]] = {"before": [], "after": []}
            for _ in range(3 if name.startswith("hop") else 1):
                for side in ("before", "after"):
                    src = getattr(args, side).resolve()
                    try:
                        rounds[side].append(SCENARIOS[name](src, Path(tmp)))
                    except Exception as exc:  # a scenario the old code cannot run at all
                        rounds[side].append({"failed": f"{type(exc).__name__}: {exc}"[:200]})
            for side, got in rounds.items():
                row[side] = got[0] if len(got) == 1 else {
                    k: percentile([g[k] for g in got], 50) if isinstance(got[0][k], float)
                    else got[0][k] for k in got[0]}
            out[name] = row
            keys = sorted(set(row["before"]) | set(row["after"]))
            print_table(name, ["", *keys], [[side, *[row[side].get(k, "-") for k in keys]]
                                            for side in ("before", "after")])
            save(args.name, out)  # after each scenario: a long run stopped keeps its figures


if __name__ == "__main__":
    main()
