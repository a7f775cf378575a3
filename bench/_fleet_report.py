"""bench/fleet.py's figures: what the ledger, the upstream and the clients say after a run."""

from __future__ import annotations

import argparse
import time
from collections import Counter, defaultdict
from typing import Any

from sqlalchemy import func, select

from _common import percentile
from _fleet_parts import CLIENTS, FleetGuide, client_rows, params_of, worst_of
from laneway.store import open_store
from laneway.store import schema as S
from laneway.store.statuses import JobStatus

G = S.gateway_requests.c


def held_claims(dsn: str, pid: int) -> int:
    """Jobs still claimed by the holder that had ``pid`` (just killed): at least what it
    had in flight."""
    store = open_store(dsn)
    try:
        with store.engine.connect() as conn:
            return int(conn.scalar(
                select(func.count()).select_from(S.jobs.join(
                    S.holders, S.jobs.c.claimed_by == S.holders.c.id))
                .where(S.holders.c.pid == pid, S.jobs.c.status == JobStatus.CLAIMED)) or 0)
    finally:
        store.close()


def _run_figures(store: Any, run_id: str, jobs: list[dict[str, Any]], budget: float,
                 answered: dict[str, int]) -> dict[str, Any]:
    counts = store.counts(run_id)
    ids = [cid for cid, _ in store.iter_results(run_id)]
    with store.engine.connect() as conn:
        committed = float(conn.scalar(select(S.runs.c.committed_usd)
                                      .where(S.runs.c.id == run_id)) or 0.0)
        done = {str(c) for c in conn.scalars(select(S.jobs.c.custom_id).where(
            S.jobs.c.run_id == run_id, S.jobs.c.status == JobStatus.SUCCEEDED))}
    twice = unrecorded = unanswered = 0
    for job in jobs:
        n = answered.get(job["params"]["messages"][-1]["content"], 0)
        twice += max(0, n - 1)
        unrecorded += int(n >= 1 and job["custom_id"] not in done)
        unanswered += int(n == 0 and job["custom_id"] in done)
    return {"jobs": len(jobs), "by_status": dict(counts.by_status),
            "succeeded": len(done), "in_output": len(ids),
            "duplicated": len(ids) - len(set(ids)),
            "lost": counts[JobStatus.CLAIMED] + unanswered + len(done - set(ids)),
            "budget_usd": budget, "spent_usd": counts.cost_usd, "committed_usd": committed,
            "answered_twice": twice, "answered_not_recorded": unrecorded}


def _key_figures(store: Any) -> list[dict[str, Any]]:
    worst = worst_of(params_of(client_rows("alpha", 1)[0]))
    out = []
    for key in store.list_keys(include_revoked=True):
        spend = key.spent_usd + key.reserved_usd + key.held_usd
        out.append({"name": key.name, "budget_usd": key.budget_usd, "spent_usd": key.spent_usd,
                    "reserved_usd": key.reserved_usd, "held_usd": key.held_usd,
                    "over_budget_in_worst_cases": round(
                        (spend - (key.budget_usd or 0.0)) / worst, 3),
                    "within": spend <= (key.budget_usd or 0.0) + worst + 1e-12})
    return out


def ledger_figures(dsn: str, run_id: str, jobs: list[dict[str, Any]], budget: float,
                   out: dict[str, Any], killed: dict[str, list[int]]) -> dict[str, Any]:
    answered: dict[str, int] = out["answered"]
    store = open_store(dsn)
    try:
        run = _run_figures(store, run_id, jobs, budget, answered)
        keys = _key_figures(store)
        with store.engine.connect() as conn:
            states = dict(conn.execute(select(G.state, func.count())
                                       .group_by(G.state)).all())
            done_200 = int(conn.scalar(select(func.count()).where(
                G.state == "done", G.status == 200, G.batch_id.is_(None))) or 0)
            in_flight = 0
            for pid in killed["serve"]:
                in_flight += int(conn.scalar(select(func.count()).where(
                    G.process.like(f"%:{pid}:%"),
                    G.state.in_(["reserved", "interrupted"]))) or 0)
            left = [{"process": str(p), "age_s": round(time.time() - float(t), 1),
                     "killed": any(f":{pid}:" in str(p) for pid in killed["serve"])}
                    for p, t in conn.execute(select(G.process, G.started_at)
                                             .where(G.state == "reserved"))]
            waits = conn.execute(select(G.queued_s, G.duration_s, G.process).where(
                G.state == "done", G.status == 200, G.batch_id.is_(None))).all()
            modes = dict(conn.execute(select(S.gateway_batches.c.id,
                                             S.gateway_batches.c.mode)).all())
    finally:
        store.close()
    client_twice = client_answered = 0
    for name, (_fits, n, _c) in CLIENTS.items():
        for row in client_rows(name, n):
            k = answered.get(row["prompt"], 0)
            client_answered += k
            client_twice += max(0, k - 1)
    worker_held = sum(k["claims_held"] or 0 for k in out["kills"])
    return {"run": run, "keys": keys, "request_states": states,
            "gateway_answered_200": done_200, "clients_answered_upstream": client_answered,
            "clients_answered_twice": client_twice,
            "clients_answered_not_recorded": client_answered - done_200,
            "serve_in_flight_at_kills": in_flight, "reserved_left": left,
            "gateway_queued_s": _lat([float(w[0]) for w in waits]),
            "gateway_duration_s": _lat([float(w[1]) for w in waits]),
            "gateway_queued_p99_by_process": _by_process(waits), "worker_claims_at_kills": worker_held,
            "batch_modes": modes}


def client_figures(guides: dict[str, FleetGuide], seen: dict[str, Any],
                   kills: list[dict[str, Any]]) -> dict[str, Any]:
    serve_kills = [k["at"] for k in kills if k["name"].startswith("serve")]
    outcomes: Counter[str] = Counter()
    moved = retries = 0
    near: list[float] = []
    far: list[float] = []
    for name, guide in guides.items():
        by_content: dict[str, list[Any]] = defaultdict(list)
        for a in guide.transport.attempts:
            outcomes[a.outcome] += 1
            moved += a.moved
            by_content[a.content].append(a)
        retries += len(guide.transport.attempts) - len(by_content)
        if name == "tight":  # its refusals (budget spent) are quick: not latency
            continue
        for tries in by_content.values():
            if tries[-1].outcome != "200":
                continue
            start, end = min(t.start for t in tries), max(t.end for t in tries)
            (near if any(start <= k <= end for k in serve_kills) else far).append(end - start)
    errors: Counter[str] = Counter()
    for s in seen.values():
        errors.update(s["errors"])
    return {"per_client": {n: {k: v for k, v in s.items() if k != "used"}
                           for n, s in seen.items()},
            "attempts": sum(outcomes.values()), "outcomes": dict(outcomes),
            "retries": retries, "refused_moved": moved,
            "cut": sum(v for k, v in outcomes.items() if not k.isdigit()),
            "client_429": sum(s["client_429"] for s in seen.values()),
            "failed_jobs": {n: s["failed"] for n, s in seen.items()},
            "errors": dict(errors.most_common(6)),
            "latency_near_kill_s": _lat(near), "latency_other_s": _lat(far)}


def _segments(timeline: list[list[float]], args: argparse.Namespace) -> list[float]:
    """Share of the limit used in each ``--kill-every`` seconds of the window."""
    out = []
    step = args.kill_every
    t = 0.0
    while True:
        inside = [(at, ok) for at, ok in timeline if t <= at <= t + step]
        if len(inside) < 2 or inside[-1][0] - inside[0][0] < step / 2:
            return out
        (a, x), (b, y) = inside[0], inside[-1]
        out.append((y - x) / (args.rpm * (b - a) / 60))
        t += step


def _by_process(waits: list[Any]) -> dict[str, float]:
    by: dict[str, list[float]] = defaultdict(list)
    for queued, _duration, process in waits:
        by[str(process).split(":")[1]].append(float(queued))
    return {pid: round(percentile(v, 99), 2) for pid, v in by.items()}


def _lat(values: list[float]) -> dict[str, float]:
    return {"n": len(values), "p50": round(percentile(values, 50), 3),
            "p99": round(percentile(values, 99), 3),
            "max": round(max(values), 3) if values else float("nan")}


def table_rows(results: list[dict[str, Any]], args: argparse.Namespace
               ) -> list[tuple[str, list[str], list[list[Any]]]]:
    quota, money, seen, batches, segments = [], [], [], [], []
    for r in results:
        up, led, cl = r["upstream"], r["ledger"], r["clients"]
        run = led["run"]
        quota.append([r["setting"], f"{100 * r['control']['use']:.1f}",
                      r["window"]["seconds"], r["window"]["answered"],
                      f"{100 * r['use_of_limit']:.1f}", up["rate_limited"],
                      f"{100 * up['rate_limited'] / max(1, up['requests']):.2f}",
                      cl["client_429"], sum(r["ledger_retries"].values())])
        worst_key = max(k["over_budget_in_worst_cases"] for k in led["keys"])
        money.append([r["setting"], f"{run['succeeded']}/{run['jobs']}", run["lost"],
                      run["duplicated"], f"{run['spent_usd']:.4f}/{run['budget_usd']:.4f}",
                      f"{run['answered_twice']}, {run['answered_not_recorded']} / "
                      f"{led['worker_claims_at_kills']}",
                      f"{led['clients_answered_twice']}, "
                      f"{led['clients_answered_not_recorded']} / "
                      f"{led['serve_in_flight_at_kills']}", worst_key])
        segments.append([r["setting"], " ".join(
            f"{100 * u:.0f}" for u in _segments(r["timeline"], args))])
        near, far = cl["latency_near_kill_s"], cl["latency_other_s"]
        kinds = Counter(k["name"][:5] for k in r["kills"])
        seen.append([r["setting"], f"{kinds['serve']}+{kinds['worke']}", cl["attempts"],
                     cl["retries"], cl["refused_moved"], cl["cut"],
                     sum(v for n, v in cl["failed_jobs"].items() if n != "tight"),
                     f"{near['n']}: {near['p50']}/{near['p99']}/{near['max']}",
                     f"{far['n']}: {far['p50']}/{far['p99']}/{far['max']}"])
        for b in r["batches"]:
            batches.append([r["setting"], b["id"][-12:], led["batch_modes"].get(b["id"], "?"),
                            b["status"], f"{b['distinct']}/{b['results']}",
                            len(r["upstream_batches"])])
    title = f"upstream rpm {args.rpm}, {args.minutes:g} min of kills every {args.kill_every:g} s"
    return [
        (f"quota over the kill window ({title})",
         ["setting", "% of limit, no kills", "window s", "answered", "% of limit",
          "upstream 429s", "% 429",
          "clients' 429s", "ledger calls retried"], quota),
        ("jobs and money (answered twice, answered but not recorded / the bound: claims "
         "held by killed workers; requests in flight in killed gateways)",
         ["setting", "run done", "lost", "dup", "run spent/budget $", "run's jobs",
          "clients' requests", "max key over budget (worst cases)"], money),
        (f"% of the limit used, each {args.kill_every:g} s of the window (a kill at each "
         "start but the first)", ["setting", "use"], segments),
        ("what clients saw (latency of a request, s: n: p50/p99/max)",
         ["setting", "kills serve+worker", "attempts", "retries", "refused→moved", "cut",
          "failed", "near a serve kill", "other"], seen),
        ("Message Batches through the gateways",
         ["setting", "batch", "mode", "status", "distinct/results", "upstream batches"],
         batches),
    ]
