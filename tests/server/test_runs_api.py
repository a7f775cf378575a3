"""The runs API: start, list, watch (SSE), results (JSONL), cancel; durable in the ledger."""

from __future__ import annotations

import json

import pytest

from laneway.store import open_store

from .helpers import Served, parse_sse

NDJSON = {"content-type": "application/x-ndjson"}


def jsonl(n: int, words: int = 4, prefix: str = "j") -> bytes:
    return "".join(json.dumps({"id": f"{prefix}{i}",
                               "prompt": " ".join(f"w{i}-{k}" for k in range(words))}) + "\n"
                   for i in range(n)).encode()


def watch(served: Served, run_id: str) -> list[tuple[str, dict[str, object]]]:
    with served.client() as http, http.stream("GET", f"/v1/runs/{run_id}/events") as r:
        assert r.status_code == 200
        assert r.headers["content-type"].startswith("text/event-stream")
        return parse_sse(list(r.iter_lines()))


def test_start_watch_and_read_results(served: Served) -> None:
    with served.client() as http:
        r = http.post("/v1/runs?name=first", content=jsonl(25), headers=NDJSON)
        assert r.status_code == 201, r.text
        run = r.json()
        assert run["id"] == "first" and run["total"] == 25 and run["live"] is True
        events = watch(served, "first")
        names = [name for name, _ in events]
        assert names[-1] == "end" and set(names[:-1]) <= {"progress"}
        last = events[-1][1]
        assert last["percent"] == 100.0 and last["done"] == last["succeeded"] == 25
        assert last["errored"] == 0
        assert "claude-haiku-4-5" in last["governor"]  # type: ignore[operator]
        r = http.get("/v1/runs/first/results")
        assert r.headers["content-type"].startswith("application/x-ndjson")
        lines = [json.loads(line) for line in r.text.splitlines()]
        assert [x["custom_id"] for x in lines] == [f"j{i}" for i in range(25)]
        assert lines[7]["result"]["message"]["content"][0]["text"] == "w7-0 w7-1 w7-2 w7-3"
        assert last["output_tokens"] == sum(
            x["result"]["message"]["usage"]["output_tokens"] for x in lines)
        info = http.get("/v1/runs/first").json()
        assert (info["status"], info["done"], info["live"]) == ("done", 25, False)
        listed = http.get("/v1/runs").json()["data"]
        assert [x["id"] for x in listed] == ["first"]
    # Durable: the run is in the ledger for any other process (e.g. `laneway run`).
    store = open_store(served.agent.settings)
    try:
        assert store.counts("first").final == 25
    finally:
        store.close()


def test_multipart_upload_and_defaults(served: Served) -> None:
    with served.client() as http:
        r = http.post("/v1/runs", params={"model": "claude-sonnet-5", "max_tokens": 2},
                      files={"file": ("jobs.jsonl", jsonl(3, words=6), "application/x-ndjson")})
        assert r.status_code == 201, r.text
        run_id = r.json()["id"]
        assert watch(served, run_id)[-1][0] == "end"
        lines = [json.loads(x) for x in http.get(f"/v1/runs/{run_id}/results").text.split()]
        message = lines[0]["result"]["message"]
        assert message["model"] == "claude-sonnet-5" and message["stop_reason"] == "max_tokens"
        # The same input again is the same run: nothing is sent twice.
        again = http.post("/v1/runs", params={"model": "claude-sonnet-5", "max_tokens": 2},
                          files={"file": ("x.jsonl", jsonl(3, words=6))})
        assert again.json()["id"] == run_id and again.json()["done"] == 3


def test_bad_input_names_the_line(served: Served) -> None:
    with served.client() as http:
        body = jsonl(2) + b'{"id": "x"}\n'
        r = http.post("/v1/runs", content=body, headers=NDJSON)
        assert r.status_code == 400
        assert r.json() == {"type": "error", "error": {"type": "invalid_request_error", "message":
                            "line 3: prompt: missing: a short-form line needs a prompt"},
                            "request_id": r.headers["request-id"]}
        assert http.post("/v1/runs", content=b"", headers=NDJSON).status_code == 400
        r = http.post("/v1/runs", content=b"{}", headers={"content-type": "image/png"})
        assert r.status_code == 415
        dup = jsonl(1) + jsonl(1)
        r = http.post("/v1/runs", content=dup, headers=NDJSON)
        assert r.status_code == 400 and "duplicate" in r.json()["error"]["message"]
        assert http.post("/v1/runs?name=n", content=jsonl(1), headers=NDJSON).status_code == 201
        r = http.post("/v1/runs?name=n", content=jsonl(2), headers=NDJSON)
        assert r.status_code == 409 and r.json()["error"]["type"] == "conflict_error"


def test_unknown_run_is_404(served: Served) -> None:
    with served.client() as http:
        for method, path in (("GET", "/v1/runs/nope"), ("GET", "/v1/runs/nope/results"),
                             ("GET", "/v1/runs/nope/events"), ("POST", "/v1/runs/nope/cancel")):
            r = http.request(method, path)
            assert r.status_code == 404, path
            assert r.json()["error"]["type"] == "not_found_error"


@pytest.mark.local_config(token_ms=20)
def test_cancel_a_running_run(served: Served) -> None:
    with served.client() as http:
        run_id = http.post("/v1/runs?name=slow", content=jsonl(60, words=8),
                           headers=NDJSON).json()["id"]
        with http.stream("GET", f"/v1/runs/{run_id}/events") as r:
            lines = r.iter_lines()
            for line in lines:  # wait for the first progress event
                if line.startswith("data:"):
                    break
            r = http.post(f"/v1/runs/{run_id}/cancel")
            assert r.status_code == 200 and r.json()["status"] == "canceled"
            assert r.json()["canceled"] > 0
            rest = parse_sse(list(lines))
        assert rest[-1][0] == "end" and rest[-1][1]["status"] == "canceled"
        results = [json.loads(x) for x in http.get(f"/v1/runs/{run_id}/results").text.split()]
        assert len(results) == 60
        assert results[-1]["result"] == {"type": "canceled"}
        assert http.get(f"/v1/runs/{run_id}").json()["status"] == "canceled"


@pytest.mark.local_config(rpm=600, token_ms=5)
def test_events_report_rate_limit_use(served: Served) -> None:
    with served.client() as http:
        run_id = http.post("/v1/runs", content=jsonl(40), headers=NDJSON).json()["id"]
    events = watch(served, run_id)
    uses = [d["limit_use"] for _, d in events if d["limit_use"] is not None]
    assert uses and max(uses) > 0  # type: ignore[type-var]
    buckets = events[-1][1]["limit_use_by_bucket"]
    assert "claude-haiku-4-5:requests" in buckets  # type: ignore[operator]
    rates = [d["rate_per_s"] for _, d in events]
    assert any(rate > 0 for rate in rates)  # type: ignore[operator]


def test_a_run_at_rest_is_read_once_until_its_row_changes(served: Served) -> None:
    """``GET /v1/runs/{id}`` of a run nothing works on keeps its counts (150-300 ms of
    reads for 100,000 jobs) until the run's row changes, as a resume or re-send does."""
    from sqlalchemy import update

    from laneway.store import schema as S

    with served.client() as http:
        assert http.post("/v1/runs?name=rest", content=jsonl(5), headers=NDJSON).is_success
        watch(served, "rest")
        first = http.get("/v1/runs/rest").json()
        assert first["status"] == "done" and first["cost_usd"] < 1.0
        store = open_store(served.agent.settings)
        try:
            with store.engine.begin() as conn:  # the jobs change behind the run's back
                conn.execute(update(S.jobs).where(S.jobs.c.run_id == "rest")
                             .values(cost_usd=1.0))
            assert http.get("/v1/runs/rest").json()["cost_usd"] == first["cost_usd"]
            with store.engine.begin() as conn:  # ... then its row, as a resume does
                conn.execute(update(S.runs).where(S.runs.c.id == "rest")
                             .values(updated_at=first["updated_at"] + 1))
            assert http.get("/v1/runs/rest").json()["cost_usd"] == pytest.approx(5.0)
        finally:
            store.close()
