"""The OpenAPI schema describes what the routes really do."""

from __future__ import annotations

import json
from typing import Any

from pydantic import BaseModel

from laneway.server.models import (
    CancelResult,
    ChatDoneEvent,
    ChatTextEvent,
    ErrorBody,
    RunInfo,
    RunList,
    RunProgressEvent,
    TrafficBucket,
    TrafficReport,
)

from .helpers import Served, parse_sse


def exactly(model: type[BaseModel], data: dict[str, Any]) -> None:
    """``data`` has the model's fields, no more, and validates against it."""
    assert set(data) == set(model.model_fields), (model.__name__, sorted(data))
    model.model_validate(data)


def ref(schema: dict[str, Any]) -> str:
    return str(schema["$ref"]).rsplit("/", 1)[-1]


def test_schema_lists_each_route_with_its_models(served: Served) -> None:
    with served.client() as http:
        spec = http.get("/openapi.json").json()
    paths = spec["paths"]
    assert {(p, m) for p, ops in paths.items() for m in ops} == {
        ("/v1/chat/stream", "post"), ("/v1/runs", "post"), ("/v1/runs", "get"),
        ("/v1/runs/{run_id}", "get"), ("/v1/runs/{run_id}/results", "get"),
        ("/v1/runs/{run_id}/cancel", "post"), ("/v1/runs/{run_id}/events", "get"),
        # A run looked into: its timeline and jobs from the ledger, and the re-send.
        ("/v1/runs/{run_id}/timeline", "get"), ("/v1/runs/{run_id}/jobs", "get"),
        ("/v1/runs/{run_id}/jobs/{custom_id}", "get"), ("/v1/runs/{run_id}/resend", "post"),
        # The gateway: the Anthropic API's own routes, relayed.
        ("/v1/messages", "post"), ("/v1/messages/count_tokens", "post"),
        ("/v1/models", "get"), ("/v1/models/{model_id}", "get"),
        # The gateway's traffic, live, over a window from the ledger, and for Prometheus.
        ("/v1/laneway/traffic", "get"), ("/v1/laneway/traffic/history", "get"),
        ("/metrics", "get"),
        # Message Batches, fulfilled by laneway runs.
        ("/v1/messages/batches", "post"), ("/v1/messages/batches", "get"),
        ("/v1/messages/batches/{batch_id}", "get"),
        ("/v1/messages/batches/{batch_id}", "delete"),
        ("/v1/messages/batches/{batch_id}/cancel", "post"),
        ("/v1/messages/batches/{batch_id}/results", "get")}
    chat = paths["/v1/chat/stream"]["post"]
    body = chat["requestBody"]["content"]["application/json"]["schema"]
    assert ref(body) == "ChatRequest"
    assert set(spec["components"]["schemas"]["ChatRequest"]["properties"]) == {
        "message", "history", "system", "model", "max_tokens"}
    assert list(chat["responses"]["200"]["content"]) == ["text/event-stream"]
    assert ref(chat["responses"]["422"]["content"]["application/json"]["schema"]) == "ErrorBody"
    events = paths["/v1/runs/{run_id}/events"]["get"]["responses"]["200"]["content"]
    assert ref(events["text/event-stream"]["schema"]) == "RunProgressEvent"
    create = paths["/v1/runs"]["post"]
    assert set(create["requestBody"]["content"]) == {
        "application/x-ndjson", "text/plain", "multipart/form-data"}
    assert {p["name"] for p in create["parameters"]} == {"name", "model", "max_tokens", "system"}
    assert ref(create["responses"]["201"]["content"]["application/json"]["schema"]) == "RunInfo"
    assert "201" in create["responses"] and "200" not in create["responses"]
    listing = paths["/v1/runs"]["get"]["responses"]["200"]["content"]["application/json"]
    assert ref(listing["schema"]) == "RunList"
    results = paths["/v1/runs/{run_id}/results"]["get"]["responses"]["200"]["content"]
    assert list(results) == ["application/x-ndjson"]
    cancel = paths["/v1/runs/{run_id}/cancel"]["post"]["responses"]["200"]["content"]
    assert ref(cancel["application/json"]["schema"]) == "CancelResult"
    traffic = paths["/v1/laneway/traffic"]["get"]["responses"]["200"]["content"]
    assert ref(traffic["application/json"]["schema"]) == "TrafficReport"
    assert list(paths["/metrics"]["get"]["responses"]["200"]["content"]) == ["text/plain"]


def test_answers_match_the_documented_models(served: Served) -> None:
    with served.client() as http:
        with http.stream("POST", "/v1/chat/stream", json={"message": "a b"}) as r:
            events = parse_sse(list(r.iter_lines()))
        for _, data in events[:-1]:
            exactly(ChatTextEvent, data)
        exactly(ChatDoneEvent, events[-1][1])
        r = http.post("/v1/runs", content=b'{"id": "a", "prompt": "x"}\n',
                      headers={"content-type": "application/x-ndjson"})
        assert r.status_code == 201
        exactly(RunInfo, r.json())
        run_id = r.json()["id"]
        with http.stream("GET", f"/v1/runs/{run_id}/events") as r:
            for _, data in parse_sse(list(r.iter_lines())):
                exactly(RunProgressEvent, data)
        listed = http.get("/v1/runs").json()
        exactly(RunList, listed)
        exactly(RunInfo, listed["data"][0])
        exactly(CancelResult, http.post(f"/v1/runs/{run_id}/cancel").json())
        for r in (http.get("/v1/runs/nope"), http.post("/v1/chat/stream", json={}),
                  http.get("/v1/runs", params={"limit": 0})):
            assert r.status_code in (404, 422)
            exactly(ErrorBody, r.json())
        line = json.loads(http.get(f"/v1/runs/{run_id}/results").text)
        assert set(line) == {"custom_id", "result"}
        traffic = http.get("/v1/laneway/traffic").json()
        exactly(TrafficReport, traffic)
        exactly(TrafficBucket, traffic["timeline"][-1])
