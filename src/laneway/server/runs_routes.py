"""The runs API: start background runs, watch them, read their results, cancel them.

Runs live in the ledger (the same runs ``laneway run`` makes), so they survive a restart
of the server; this server executes the ones started through it, through its governor,
behind any chat stream.
"""

from __future__ import annotations

import asyncio
import logging
import weakref
from collections.abc import AsyncIterator, Iterator
from typing import Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import StreamingResponse
from sse_starlette import EventSourceResponse, ServerSentEvent

from laneway.agent import HybridAgent
from laneway.errors import InputError, RunNotFoundError
from laneway.jobs.formats import JobDefaults
from laneway.runs.cancel import cancel
from laneway.runs.names import RULE, run_name_problem, safe_file_stem
from laneway.server.at_rest import AtRest
from laneway.server.errors import HTTPError
from laneway.server.events_hub import EventsHub
from laneway.server.models import (
    SSE_MARK,
    CancelResult,
    ErrorBody,
    RunInfo,
    RunList,
    RunProgressEvent,
)
from laneway.server.progress import models_of, run_info
from laneway.store import RunRow, Store
from laneway.wire.batches import result_line
from laneway.wire.body import read_body
from laneway.wire.errors import too_large

router = APIRouter(tags=["runs"])
log = logging.getLogger("laneway.server")

MAX_UPLOAD_BYTES = 256 * 1024 * 1024
_JSONL_TYPES = ("application/x-ndjson", "application/jsonl", "application/json",
                "text/plain", "application/octet-stream")

_UPLOAD_BODY: dict[str, Any] = {
    "required": True,
    "description": "The jobs, one JSON object a line: `{\"custom_id\", \"params\"}` or "
                   "`{\"id\", \"prompt\"}` (the input format of `laneway run`), as the raw "
                   "body or as the `file` field of a multipart form.",
    "content": {
        **{t: {"schema": {"type": "string"}} for t in ("application/x-ndjson", "text/plain")},
        "multipart/form-data": {"schema": {
            "type": "object", "required": ["file"],
            "properties": {"file": {"type": "string", "format": "binary"}}}},
    },
}
_COMMON: dict[int | str, dict[str, Any]] = {
    401: {"model": ErrorBody, "description": "A token is required."},
    422: {"model": ErrorBody, "description": "A parameter is not valid."},
    503: {"model": ErrorBody, "description": "The ledger or the backend is unavailable."},
}
_ERRORS: dict[int | str, dict[str, Any]] = {
    **_COMMON, 404: {"model": ErrorBody, "description": "No such run."}}


def _agent(request: Request) -> HybridAgent:
    agent: HybridAgent = request.app.state.agent
    return agent


async def _read_upload(request: Request) -> bytes:
    ctype = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if ctype == "multipart/form-data":
        form = await request.form(max_files=1, max_fields=10)
        upload = form.get("file")
        if upload is None or isinstance(upload, str):
            raise HTTPError(400, "invalid_request_error",
                            "multipart upload: put the JSONL file in a field named 'file'")
        data = await upload.read()
    elif ctype and ctype not in _JSONL_TYPES:
        raise HTTPError(415, "invalid_request_error",
                        f"content-type {ctype!r}: send JSONL (application/x-ndjson) or a "
                        "multipart form with a 'file' field")
    else:
        data = await read_body(request, MAX_UPLOAD_BYTES)
    if len(data) > MAX_UPLOAD_BYTES:
        raise too_large(MAX_UPLOAD_BYTES)
    if not data.strip():
        raise HTTPError(400, "invalid_request_error", "the input is empty: send JSONL jobs")
    return data


#: A run at rest's info, per ledger (its counts, models and re-send count are 150-300 ms
#: of reads for 100,000 jobs).
_AT_REST: weakref.WeakKeyDictionary[Store, AtRest[RunInfo]] = weakref.WeakKeyDictionary()


async def _info(agent: HybridAgent, run_id: str) -> RunInfo:
    def read() -> RunInfo | None:
        run = agent.store.get_run(run_id)
        if run is None:
            return None
        live = agent.is_live(run_id)
        if not run.status.ended or live:
            return _read_info(agent, run, live)
        kept = _AT_REST.setdefault(agent.store, AtRest(256))
        version = AtRest.version(run)
        info = kept.get(run_id, version)
        if info is None:
            info = _read_info(agent, run, live)
            kept.put(run_id, version, info)
        return info.model_copy()

    info = await agent.astore.call(read)
    if info is None:
        raise RunNotFoundError(f"no run {run_id!r}")
    return info


def _read_info(agent: HybridAgent, run: RunRow, live: bool) -> RunInfo:
    run_id = run.id
    p = agent.progress(run_id) if live else None
    counts = agent.store.counts(run_id)
    info = run_info(run, counts, live=live, in_flight=p.in_flight if p else 0,
                    rate_per_s=round(p.rate_per_s, 3) if p else None,
                    models=models_of(agent.store, run_id, counts))
    info.resendable = agent.store.resendable(run_id)
    info.gateway_batch = agent.store.is_gateway_batch(run_id)
    return info


@router.post("/v1/runs", status_code=201, response_model=RunInfo,
             responses={**_COMMON,
                        400: {"model": ErrorBody, "description": "A bad line, or no jobs."},
                        409: {"model": ErrorBody,
                              "description": "The run name is taken by other input."},
                        413: {"model": ErrorBody, "description": "The input is too large."},
                        415: {"model": ErrorBody, "description": "Not JSONL."}},
             openapi_extra={"requestBody": _UPLOAD_BODY}, summary="Start a background run")
async def create_run(
    request: Request,
    name: str | None = Query(None, description=f"Run name: {RULE} (default: from the "
                                               "content)."),
    model: str | None = Query(None, description="Model for lines that name none."),
    max_tokens: int | None = Query(None, ge=1, description="max_tokens for lines that "
                                                           "give none."),
    system: str | None = Query(None, description="System prompt for lines that give none."),
) -> RunInfo:
    """Start (or resume: the same input again is the same run) a durable background run.

    Answers at once; watch it with `GET /v1/runs/{id}/events`.
    """
    agent = _agent(request)
    if name is not None and (problem := run_name_problem(name)) is not None:
        raise HTTPError(422, "invalid_request_error", f"name: {problem}")
    data = await _read_upload(request)
    path = await asyncio.to_thread(agent.save_input, data)
    defaults = JobDefaults(model=model or agent.model,
                           max_tokens=max_tokens or agent.max_tokens,
                           system=system if system is not None else agent.system)
    try:
        run_id = await agent.submit(path, run_name=name, defaults=defaults)
    except InputError as exc:
        # Name the line, not the server's copy of the file.
        where = f"line {exc.line}: " if exc.line else ""
        field = f"{exc.field}: " if exc.field else ""
        raise InputError(f"{where}{field}{exc.reason}") from None
    return await _info(agent, run_id)


@router.get("/v1/runs", response_model=RunList, responses=_COMMON, summary="List runs")
async def list_runs(request: Request, limit: int = Query(50, ge=1, le=1000)) -> RunList:
    """The newest runs of the ledger first (started here or by `laneway run`)."""
    agent = _agent(request)

    def read() -> list[RunInfo]:
        listed = [(r, agent.store.counts(r.id)) for r in agent.store.list_runs(limit=limit)]
        return [run_info(r, c, live=agent.is_live(r.id), models=models_of(agent.store, r.id, c))
                for r, c in listed]

    return RunList(data=await agent.astore.call(read))


@router.get("/v1/runs/{run_id}", response_model=RunInfo, responses=_ERRORS,
            summary="One run")
async def get_run(request: Request, run_id: str) -> RunInfo:
    return await _info(_agent(request), run_id)


@router.get("/v1/runs/{run_id}/results", response_class=StreamingResponse,
            responses={**_ERRORS, 200: {
                "description": "JSONL, one line per finished job in input order, in the "
                               "Message Batches results format: `{\"custom_id\", \"result\": "
                               "{\"type\": \"succeeded\", \"message\"}}` (or errored, canceled,"
                               " expired). Jobs not finished yet are not listed.",
                "content": {"application/x-ndjson": {"schema": {"type": "string"}}}}},
            summary="Results (JSONL)")
async def get_results(request: Request, run_id: str) -> StreamingResponse:
    agent = _agent(request)
    await _info(agent, run_id)
    rows: Iterator[tuple[str, dict[str, Any]]] = agent.store.iter_results(run_id)

    def next_chunk() -> bytes:
        lines = []
        for custom_id, result in rows:  # the generator only ever runs on the store thread
            lines.append(result_line(custom_id, result))
            if len(lines) >= 1000:
                break
        return ("\n".join(lines) + "\n").encode() if lines else b""

    async def body() -> AsyncIterator[bytes]:
        while chunk := await agent.astore.call(next_chunk):
            yield chunk

    # A run made before names were checked may hold anything: never echo it raw.
    filename = f"{safe_file_stem(run_id)}.results.jsonl"
    return StreamingResponse(body(), media_type="application/x-ndjson",
                             headers={"content-disposition": f'inline; filename="{filename}"'})


@router.post("/v1/runs/{run_id}/cancel", response_model=CancelResult, responses=_ERRORS,
             summary="Cancel a run")
async def cancel_run(request: Request, run_id: str) -> CancelResult:
    """Stop sending, cancel the run's native batches at the provider (what they had
    finished is billed, so recorded), and record every job not finished as `canceled`."""
    agent = _agent(request)
    await _info(agent, run_id)
    done = await cancel(run_id, astore=agent.astore, provider=agent.provider,
                        stop_live=agent.stop_live, wait_s=request.app.state.cancel_wait_s,
                        on_notice=log.info)
    return CancelResult(id=run_id, status="canceled", canceled=done.canceled,
                        batches_canceled=done.batches_canceled,
                        batches_still_running=done.batches_still_running,
                        billed=done.billed, billed_usd=done.billed_usd)


@router.get("/v1/runs/{run_id}/events", response_class=EventSourceResponse,
            responses={**_ERRORS, 200: {
                "model": RunProgressEvent,
                "description": "Server-sent events: `event: progress` with a "
                               "RunProgressEvent about twice a second, and a last "
                               "`event: end` (same data) when the run has ended."}},
            openapi_extra={SSE_MARK: True}, summary="Live progress (SSE)")
async def run_events(request: Request, run_id: str) -> EventSourceResponse:
    await _info(_agent(request), run_id)
    hub: EventsHub = request.app.state.events_hub

    async def events() -> AsyncIterator[ServerSentEvent]:
        seq = 0
        async with hub.listen(run_id) as samples:  # one ledger poll per run, shared
            while (sample := await samples.get()) is not None:
                data, ended = sample
                seq += 1
                yield ServerSentEvent(data=data, id=str(seq),
                                      event="end" if ended else "progress")
                if ended:
                    return

    return EventSourceResponse(events(), ping=15, sep="\n")
