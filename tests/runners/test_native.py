"""Native Message Batches end to end against the local API (a day is seconds there)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from anthropic._utils._json import openapi_dumps

from laneway.cost.prices import Usage, cost_usd
from laneway.jobs.formats import JobDefaults
from laneway.local import RunningLocal
from laneway.local.faults import FaultPlan
from laneway.provider.client import Provider
from laneway.runners.native import NativeOptions
from laneway.runners.native.wire import encode_request
from laneway.runs.library import run
from laneway.store import open_store
from laneway.store import schema as S

from .helpers import MODEL, make_input, read_output, server_batches, strip_ids

DEFAULTS = JobDefaults(model=MODEL, max_tokens=100)


def fast(**kw: object) -> NativeOptions:
    return NativeOptions(poll_initial_s=0.05, poll_max_s=0.3, recover_after_s=0.0,
                         **kw)  # type: ignore[arg-type]


def jobs_of(db: Path, run_id: str) -> list[dict[str, object]]:
    store = open_store(str(db))
    try:
        with store.engine.connect() as conn:
            rows = conn.execute(S.jobs.select().where(S.jobs.c.run_id == run_id)
                                .order_by(S.jobs.c.seq)).mappings().all()
        return [dict(r) for r in rows]
    finally:
        store.close()


async def test_native_results_have_realtime_form_and_half_the_cost(
        tmp_path: Path, local_api: RunningLocal) -> None:
    # Ids the API would refuse as batch custom_ids: spaces, accents, 80 characters.
    odd = ["doc 0 é", "x" * 80, "a/b:c"]
    inp = make_input(tmp_path / "in.jsonl", 25,
                     ids=lambda i: odd[i] if i < len(odd) else f"doc-{i}")
    provider = Provider.at(local_api.base_url)
    notices: list[str] = []
    nat = await run(inp, tmp_path / "native.jsonl", provider=provider, db=tmp_path / "n.db",
                    mode="native", defaults=DEFAULTS, native=fast(max_requests=10),
                    on_notice=notices.append)
    rt = await run(inp, tmp_path / "rt.jsonl", provider=provider, db=tmp_path / "r.db",
                   mode="realtime", defaults=DEFAULTS)
    await provider.aclose()
    native_rows, rt_rows = read_output(tmp_path / "native.jsonl"), read_output(tmp_path / "rt.jsonl")
    assert [r["custom_id"] for r in native_rows] == [r["custom_id"] for r in rt_rows]
    assert native_rows[1]["custom_id"] == "x" * 80
    # The same results, but for the tier that served them (a batch's are "batch").
    tiers = [{r["result"]["message"]["usage"].pop("service_tier") for r in rows}
             for rows in (native_rows, rt_rows)]
    assert tiers == [{"batch"}, {"standard"}]
    assert [strip_ids(r) for r in native_rows] == [strip_ids(r) for r in rt_rows]
    assert (nat.mode, nat.succeeded, nat.pending) == ("native", 25, 0)
    # Three batches (10 + 10 + 5), each job sent once.
    assert len(await server_batches(local_api.base_url)) == 3
    assert nat.requests == 25 and local_api.api.stats["requests"] == 25  # realtime's only
    assert nat.cost_usd == pytest.approx(rt.cost_usd / 2)
    assert nat.realtime_cost_usd == pytest.approx(rt.cost_usd)
    usage = Usage(input_tokens=nat.input_tokens, output_tokens=nat.output_tokens)
    assert nat.cost_usd == pytest.approx(cost_usd(MODEL, usage, batch=True))
    assert any("submitted as msgbatch_" in n for n in notices)
    assert any("filed: 10 succeeded" in n for n in notices)
    rows = jobs_of(tmp_path / "n.db", nat.run_id)
    assert {r["mode"] for r in rows} == {"native"} and {r["attempts"] for r in rows} == {1}


async def test_chunks_respect_request_and_byte_limits(tmp_path: Path,
                                                      local_api: RunningLocal) -> None:
    inp = make_input(tmp_path / "in.jsonl", 30, words=20)
    part = len(encode_request(0, "b0123456789ab", {
        "model": MODEL, "max_tokens": 100,
        "messages": [{"role": "user", "content": " ".join(f"w0x{k}" for k in range(20))}]}))
    max_bytes = 4 * part + 60  # about four requests a batch
    # One job too large for any batch: recorded as errored, never sent.
    with inp.open("a") as f:
        f.write(json.dumps({"id": "huge", "prompt": "z" * max_bytes}) + "\n")
    provider = Provider.at(local_api.base_url)
    summary = await run(inp, tmp_path / "out.jsonl", provider=provider, db=tmp_path / "l.db",
                        mode="native", defaults=DEFAULTS,
                        native=fast(max_requests=50, max_bytes=max_bytes))
    await provider.aclose()
    assert (summary.succeeded, summary.errored, summary.pending) == (30, 1, 0)
    huge = read_output(tmp_path / "out.jsonl")[-1]
    assert huge["result"]["error"]["error"]["type"] == "request_too_large"
    rows = [r for r in open_store(str(tmp_path / "l.db")).run_batches(summary.run_id)]
    assert sum(r.request_count for r in rows) == 30
    assert all(r.bytes <= max_bytes for r in rows)
    # Packed: no batch (but the last) had room for even the smallest request.
    assert all(r.bytes + 1 + part > max_bytes for r in rows[:-1])
    assert max(r.request_count for r in rows) == 4
    assert len(await server_batches(local_api.base_url)) == len(rows)


async def test_request_limit_chunks(tmp_path: Path, local_api: RunningLocal) -> None:
    inp = make_input(tmp_path / "in.jsonl", 23)
    provider = Provider.at(local_api.base_url)
    summary = await run(inp, None, provider=provider, db=tmp_path / "l.db", mode="native",
                        defaults=DEFAULTS, native=fast(max_requests=5))
    await provider.aclose()
    sizes = sorted(b.request_counts.succeeded for b in await server_batches(local_api.base_url))
    assert sizes == [3, 5, 5, 5, 5] and summary.succeeded == 23


def test_body_is_what_the_sdk_would_send() -> None:
    params = {"model": MODEL, "max_tokens": 5,
              "messages": [{"role": "user", "content": "héllo \"wörld\" ✓"}]}
    parts = [encode_request(i, "babc", params) for i in range(3)]
    ours = b'{"requests":[' + b",".join(parts) + b"]}"
    sdk = openapi_dumps({"requests": [json.loads(p) for p in parts]})
    assert ours == sdk


@pytest.mark.local_config(batch_min_s=0.1)
async def test_retryable_errors_are_resubmitted_request_errors_are_not(
        tmp_path: Path, local_api: RunningLocal) -> None:
    local_api.api.batches.faults = FaultPlan.parse("529=0.25,500=0.1", seed=4)
    inp = make_input(tmp_path / "in.jsonl", 40)
    with inp.open("a") as f:  # the local API refuses temperature 5 (a request error)
        f.write(json.dumps({"custom_id": "bad", "params": {
            "messages": [{"role": "user", "content": "hi"}], "temperature": 5}}) + "\n")
    provider = Provider.at(local_api.base_url)
    summary = await run(inp, tmp_path / "out.jsonl", provider=provider, db=tmp_path / "l.db",
                        mode="native", defaults=DEFAULTS, native=fast(), max_attempts=10)
    await provider.aclose()
    assert (summary.succeeded, summary.errored, summary.pending) == (40, 1, 0)
    assert summary.retries > 0
    assert len(await server_batches(local_api.base_url)) > 1
    rows = {r["custom_id"]: r for r in jobs_of(tmp_path / "l.db", summary.run_id)}
    assert rows["bad"]["attempts"] == 1 and rows["bad"]["error_type"] == "invalid_request_error"
    assert max(int(r["attempts"]) for r in rows.values()) > 1  # type: ignore[call-overload]
    bad = read_output(tmp_path / "out.jsonl")[-1]
    assert bad["result"]["type"] == "errored"


@pytest.mark.local_config(batch_time_scale=0.00002, ttft_ms=300, batch_concurrency=2)
async def test_expired_jobs_are_run_again(tmp_path: Path, local_api: RunningLocal) -> None:
    # A day is 1.7 s here and the batch does ~6 requests a second: the first batch of 16
    # expires part-way, and what expired goes into the next one.
    inp = make_input(tmp_path / "in.jsonl", 16)
    provider = Provider.at(local_api.base_url)
    summary = await run(inp, tmp_path / "out.jsonl", provider=provider, db=tmp_path / "l.db",
                        mode="native", defaults=DEFAULTS, native=fast(), max_attempts=6)
    await provider.aclose()
    assert (summary.succeeded, summary.expired, summary.pending) == (16, 0, 0)
    batches = await server_batches(local_api.base_url)
    assert batches[-1].request_counts.expired > 0 and len(batches) >= 2
    assert all(r["result"]["type"] == "succeeded" for r in read_output(tmp_path / "out.jsonl"))


async def test_budget_stops_before_it_is_exceeded(tmp_path: Path,
                                                  local_api: RunningLocal) -> None:
    inp = make_input(tmp_path / "in.jsonl", 30, words=40)
    # Worst case of a job: ~78 input tokens (estimated) at $3/M and 100 output at $15/M,
    # halved: $0.00087. What one really costs: 43 in, 40 out: $0.00037. So batches of
    # 4, 2, 2, 1 jobs go (each sent once what is spent is known), then the next would
    # not fit.
    budget = 0.004
    notices: list[str] = []
    provider = Provider.at(local_api.base_url)
    summary = await run(inp, None, provider=provider, db=tmp_path / "l.db", mode="native",
                        defaults=DEFAULTS, native=fast(), budget_usd=budget,
                        on_notice=notices.append)
    await provider.aclose()
    assert summary.stop_reason == "budget"
    assert 5 <= summary.succeeded < 30 and summary.pending == 30 - summary.succeeded
    assert summary.cost_usd <= budget
    assert any("--budget" in n and "not submitted" in n for n in notices)
    sent = sum(b.request_counts.succeeded for b in await server_batches(local_api.base_url))
    assert sent == summary.succeeded  # nothing paid that is not recorded


async def test_a_job_no_batch_can_hold_does_not_stop_the_others(
        tmp_path: Path, local_api: RunningLocal) -> None:
    inp = tmp_path / "in.jsonl"
    inp.write_text(json.dumps({"id": "huge", "prompt": "z" * 5000}) + "\n")
    make_input(tmp_path / "rest.jsonl", 3)
    inp.write_text(inp.read_text() + (tmp_path / "rest.jsonl").read_text())
    provider = Provider.at(local_api.base_url)
    summary = await run(inp, tmp_path / "out.jsonl", provider=provider, db=tmp_path / "l.db",
                        mode="native", defaults=DEFAULTS,
                        native=fast(max_requests=1, max_bytes=1000))
    await provider.aclose()
    assert (summary.succeeded, summary.errored, summary.pending) == (3, 1, 0)
    assert [r["result"]["type"] for r in read_output(tmp_path / "out.jsonl")] == \
        ["errored", "succeeded", "succeeded", "succeeded"]
