"""The gateway's traffic, live: ``GET /v1/laneway/traffic`` and ``GET /metrics`` count
exactly what the official SDK sent through ``laneway serve`` (local API upstream)."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anthropic
import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from laneway.governor.buckets import RateLimits
from laneway.local import RunningLocal

from .helpers import Served, start_server, wait_for

MODEL = "claude-haiku-4-5"
TOKEN_FIELDS = ("input_tokens", "output_tokens", "cache_creation_input_tokens",
                "cache_read_input_tokens")
CACHED_SYSTEM = [{"type": "text", "text": "You answer briefly. " * 40,
                  "cache_control": {"type": "ephemeral"}}]


def sdk(base_url: str, **kwargs: Any) -> anthropic.Anthropic:
    return anthropic.Anthropic(base_url=base_url, api_key="any", max_retries=0, **kwargs)


def ask(i: int) -> list[dict[str, str]]:
    return [{"role": "user", "content": f"request number {i} of the test"}]


def tokens(usages: list[Any]) -> dict[str, int]:
    return {f: sum(getattr(u, f) or 0 for u in usages) for f in TOKEN_FIELDS}


def traffic(served: Served) -> dict[str, Any]:
    with served.client() as http:
        r = http.get("/v1/laneway/traffic")
        assert r.status_code == 200, r.text
        report: dict[str, Any] = r.json()
        return report


def rows(report: dict[str, Any]) -> dict[tuple[str, str, str], dict[str, Any]]:
    return {(r["key"], r["model"], r["lane"]): r for r in report["keys"]}


def answered(served: Served) -> int:
    return sum(r["requests"] for r in traffic(served)["keys"])


def metrics(served: Served) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    """``(sample name, labels) -> value`` of every sample ``/metrics`` serves."""
    with served.client() as http:
        r = http.get("/metrics")
        assert r.status_code == 200 and r.headers["content-type"].startswith("text/plain")
    return {(s.name, frozenset(s.labels.items())): s.value
            for family in text_string_to_metric_families(r.text) for s in family.samples}


def sample(found: dict[tuple[str, frozenset[tuple[str, str]]], float], name: str,
           **labels: str) -> float:
    return found[(name, frozenset(labels.items()))]


@pytest.fixture
def limited(local_api: RunningLocal, tmp_path: Path) -> Iterator[Served]:
    """A server whose governor knows its limits (so the buckets' fill is reported)."""
    s = start_server(local_api, tmp_path / "l.db",
                     limits=RateLimits(rpm=6000, itpm=1_000_000, otpm=1_000_000))
    try:
        yield s
    finally:
        s.stop()


def send_mix(served: Served) -> dict[str, list[Any]]:
    """Background: 3 plain, 2 with a cached system prompt, 1 refused (400); interactive:
    2 streams and 1 plain request that asked for the lane. Returns the usages."""
    client = sdk(served.base_url)
    background = [client.messages.create(model=MODEL, max_tokens=12, messages=ask(i)).usage
                  for i in range(3)]
    background += [client.messages.create(model=MODEL, max_tokens=12, messages=ask(9),
                                          system=CACHED_SYSTEM).usage for _ in range(2)]
    with pytest.raises(anthropic.BadRequestError):
        client.messages.create(model=MODEL, max_tokens=12, messages=ask(0),
                               extra_body={"not_a_field": 1})
    interactive = []
    for i in range(2):
        with client.messages.stream(model=MODEL, max_tokens=12, messages=ask(10 + i)) as s:
            interactive.append(s.get_final_message().usage)
    interactive.append(client.messages.create(
        model=MODEL, max_tokens=12, messages=ask(20),
        extra_headers={"laneway-lane": "interactive"}).usage)
    return {"background": background, "interactive": interactive}


def test_traffic_counts_exactly_what_was_sent(limited: Served) -> None:
    served = limited
    usages = send_mix(served)
    assert tokens(usages["background"])["cache_read_input_tokens"] > 0
    assert tokens(usages["background"])["cache_creation_input_tokens"] > 0
    wait_for(lambda: answered(served) == 9, what="the last stream to be counted")
    report = traffic(served)
    found = rows(report)
    assert list(found) == [("local", MODEL, "background"), ("local", MODEL, "interactive")]
    bg, it = found[("local", MODEL, "background")], found[("local", MODEL, "interactive")]
    assert (bg["requests"], bg["errors"], bg["client_closed"]) == (6, 1, 0)
    assert (it["requests"], it["errors"], it["client_closed"]) == (3, 0, 0)
    assert {f: bg[f] for f in TOKEN_FIELDS} == tokens(usages["background"])
    assert {f: it[f] for f in TOKEN_FIELDS} == tokens(usages["interactive"])
    for row in (bg, it):
        assert row["cost_usd"] == 0.0 and row["unpriced"] == 0  # the local API is free
        assert row["upstream_errors"] == 0
        assert 0 <= row["ttft_s_p50"] <= row["ttft_s_p95"]
        assert 0 <= row["queued_s_max"] <= row["queued_s_total"]
    timeline = report["timeline"]
    assert sum(b["requests"]["background"] for b in timeline) == 6
    assert sum(b["requests"]["interactive"] for b in timeline) == 3
    assert sum(b["errors"] for b in timeline) == 1
    every = usages["background"] + usages["interactive"]
    assert sum(b["input_tokens"] for b in timeline) == tokens(every)["input_tokens"]
    assert sum(b["output_tokens"] for b in timeline) == tokens(every)["output_tokens"]
    assert [b["t"] for b in timeline] == sorted(b["t"] for b in timeline)
    assert all(b["t"] % report["bucket_s"] == 0 for b in timeline)
    assert report["queue"] == {"interactive": {"waiting": 0, "in_flight": 0},
                               "background": {"waiting": 0, "in_flight": 0}}
    limits = report["limits"][MODEL]["buckets"]
    assert {k: b["limit"] for k, b in limits.items()} == {
        "requests": 6000, "input": 1_000_000, "output": 1_000_000}
    assert timeline[-1]["limit_use"]["requests"] is not None
    check_metrics(served, usages)


def check_metrics(served: Served, usages: dict[str, list[Any]]) -> None:
    found = metrics(served)
    by = {"key": "local", "model": MODEL}
    total = "laneway_gateway_requests_total"
    assert sample(found, total, **by, lane="background", status="200") == 5
    assert sample(found, total, **by, lane="background", status="400") == 1
    assert sample(found, total, **by, lane="interactive", status="200") == 3
    assert sum(v for (name, _), v in found.items() if name == total) == 9
    for lane, used in usages.items():
        sent = tokens(used)
        for kind, field in (("input", "input_tokens"), ("output", "output_tokens"),
                            ("cache_read", "cache_read_input_tokens"),
                            ("cache_creation", "cache_creation_input_tokens")):
            assert sample(found, "laneway_gateway_tokens_total", **by, lane=lane,
                          kind=kind) == sent[field], (lane, kind)
        assert sample(found, "laneway_gateway_cost_usd_total", **by, lane=lane) == 0.0
        assert sample(found, "laneway_gateway_upstream_errors_total", **by, lane=lane) == 0
        assert sample(found, "laneway_gateway_queue_depth", lane=lane) == 0
        assert sample(found, "laneway_gateway_in_flight", lane=lane) == 0
    assert sample(found, "laneway_gateway_queue_seconds_count", lane="background") == 6
    assert sample(found, "laneway_gateway_queue_seconds_count", lane="interactive") == 3
    # The refused request has no time to first token: 5 background, 3 interactive.
    assert sample(found, "laneway_gateway_ttft_seconds_count", lane="background") == 5
    assert sample(found, "laneway_gateway_ttft_seconds_count", lane="interactive") == 3
    fill = sample(found, "laneway_governor_bucket_fill", model=MODEL, kind="requests")
    assert 0.99 < fill <= 1.0  # 9 of 6,000 a minute


@pytest.mark.local_config(faults="429=0.4", fault_retry_after_s=0, seed=3)
def test_upstream_errors_absorbed_are_counted(served: Served) -> None:
    """The upstream refuses some requests with 429 (retry-after 0): the gateway tries
    again, the client never sees it, and the traffic says how many it absorbed."""
    client = sdk(served.base_url)
    for i in range(8):
        client.messages.create(model=MODEL, max_tokens=5, messages=ask(i))
    faults = served.local.api.stats["faults"]
    assert faults > 0
    row = rows(traffic(served))[("local", MODEL, "background")]
    assert (row["requests"], row["errors"], row["upstream_errors"]) == (8, 0, faults)
    found = metrics(served)
    assert sample(found, "laneway_gateway_upstream_errors_total", key="local", model=MODEL,
                  lane="background") == faults


def test_the_queue_is_live_and_a_client_that_left_is_counted(
        local_api: RunningLocal, tmp_path: Path) -> None:
    served = start_server(local_api, tmp_path / "l.db", limits=RateLimits(rpm=1))
    try:
        sdk(served.base_url).messages.create(model=MODEL, max_tokens=5, messages=ask(0))
        gone = threading.Event()

        def queued() -> None:  # waits for the next minute's request, gives up first
            with pytest.raises(anthropic.APITimeoutError):
                sdk(served.base_url, timeout=1.5).messages.create(
                    model=MODEL, max_tokens=5, messages=ask(1))
            gone.set()

        thread = threading.Thread(target=queued)
        thread.start()
        wait_for(lambda: traffic(served)["queue"]["background"]["waiting"] == 1,
                 what="the request to wait in the queue")
        assert sample(metrics(served), "laneway_gateway_queue_depth", lane="background") == 1
        thread.join(timeout=10)
        assert gone.is_set()
        wait_for(lambda: answered(served) == 2, what="the request that left to be counted")
        report = traffic(served)
        row = rows(report)[("local", MODEL, "background")]
        assert (row["requests"], row["errors"], row["client_closed"]) == (2, 1, 1)
        assert row["queued_s_max"] > 0
        assert report["queue"]["background"]["waiting"] == 0
        assert report["limits"][MODEL]["buckets"]["requests"]["use"] > 0.9
        assert local_api.api.completions.completed == 1
    finally:
        served.stop()


def test_traffic_and_metrics_need_the_token(local_api: RunningLocal, tmp_path: Path) -> None:
    served = start_server(local_api, tmp_path / "l.db", token="tok-9")
    try:
        with httpx.Client(base_url=served.base_url, timeout=10) as http:
            for path in ("/v1/laneway/traffic", "/metrics", "/traffic"):
                assert http.get(path).status_code == 401, path
                assert http.get(path, params={"token": "tok-9"}).status_code == 200, path
                r = http.get(path, headers={"authorization": "Bearer tok-9"})
                assert r.status_code == 200, path
    finally:
        served.stop()


def test_the_page_is_served_with_the_strict_csp(served: Served) -> None:
    with served.client() as http:
        r = http.get("/traffic")
        assert r.status_code == 200
        assert "script-src 'self'" in r.headers["content-security-policy"]
        assert "/static/traffic.js" in r.text and "<script>" not in r.text
        for page in ("/", "/runs"):
            assert 'href="/traffic"' in http.get(page).text
