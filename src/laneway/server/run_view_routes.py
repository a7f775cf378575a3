"""A run looked into: its timeline and its jobs from the ledger (the run's page,
``/runs/{id}``, reads them), and the re-send of its errored and expired jobs.

Everything here reads the ledger, not a page that stayed open: a finished run shows the
same charts and jobs whoever watched it. Job pages are keyset pages (``after`` /
``before`` a ``seq``), so any page of a 100,000-job run answers as fast as the first.
These reads run in a thread of their own, not on the store's one thread, so a page
opening reads its run, its timeline and its first jobs at once (the ledger serves
readers side by side: SQLite in WAL mode, PostgreSQL's pool).
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from fastapi import APIRouter, Query, Request

from laneway.agent import HybridAgent
from laneway.errors import RunNotFoundError
from laneway.jobs.formats import JobDefaults
from laneway.server.at_rest import AtRest
from laneway.server.errors import HTTPError
from laneway.server.models import ErrorBody
from laneway.server.run_view_models import (
    JobDetail,
    JobPage,
    JobRow,
    ResendResult,
    RunTimeline,
)
from laneway.store import RunRow
from laneway.store.statuses import JobStatus, RunStatus

router = APIRouter(tags=["runs"])

_ERRORS: dict[int | str, dict[str, Any]] = {
    401: {"model": ErrorBody, "description": "A token is required."},
    404: {"model": ErrorBody, "description": "No such run (or job)."},
    422: {"model": ErrorBody, "description": "A parameter is not valid."},
    503: {"model": ErrorBody, "description": "The ledger is unavailable."},
}


#: Timelines of runs at rest kept, newest last: such a run's jobs do not change until
#: something resumes it, which changes its row (status and ``updated_at``).
_KEPT_TIMELINES = 32


def _kept(request: Request) -> AtRest[RunTimeline]:
    kept: AtRest[RunTimeline] | None = getattr(request.app.state, "run_timelines", None)
    if kept is None:
        kept = request.app.state.run_timelines = AtRest(_KEPT_TIMELINES)
    return kept


def _agent(request: Request) -> HybridAgent:
    agent: HybridAgent = request.app.state.agent
    return agent


async def _run(agent: HybridAgent, run_id: str) -> RunRow:
    # Not on the store's thread either: there it would wait behind the run's counts.
    run = await asyncio.to_thread(agent.store.get_run, run_id)
    if run is None:
        raise RunNotFoundError(f"no run {run_id!r}")
    return run


@router.get("/v1/runs/{run_id}/timeline", response_model=RunTimeline, responses=_ERRORS,
            summary="A run over its time")
async def timeline(request: Request, run_id: str,
                   buckets: int = Query(60, ge=1, le=600,
                                        description="Buckets at most.")) -> RunTimeline:
    """Per bucket of the run's time: jobs succeeded and errored, tokens, cost (from the
    jobs' rows), and the peak rate-limit use and requests in flight (from the samples
    its runner wrote). A run at rest's timeline is kept until its row changes."""
    agent = _agent(request)
    run = await _run(agent, run_id)
    kept, version = _kept(request), AtRest.version(run, buckets)
    at_rest = run.status.ended and not agent.is_live(run_id)
    found_kept = kept.get(run_id, version) if at_rest else None
    if found_kept is not None:
        return found_kept
    found = await asyncio.to_thread(agent.store.run_timeline, run_id, buckets=buckets)
    rows = found["buckets"]
    done = sum(b["succeeded"] + b["errored"] for b in rows)
    span = (found["end"] - found["start"]) if rows else 0.0
    width = float(found["bucket_s"])
    timeline = RunTimeline(
        run_id=run_id, start=found["start"], end=found["end"], bucket_s=width,
        rate_per_s=round(done / max(span, width), 3) if done else 0.0,
        samples=any(b["limit_use"] is not None or b["in_flight"] is not None for b in rows),
        buckets=rows)
    if at_rest:
        kept.put(run_id, version, timeline)
    return timeline


@router.get("/v1/runs/{run_id}/jobs", response_model=JobPage, responses=_ERRORS,
            summary="A run's jobs, a page at a time")
async def jobs(
    request: Request, run_id: str,
    status: list[JobStatus] = Query(default_factory=list,
                                    description="Only jobs of these statuses (repeat it)."),
    search: str = Query("", max_length=300, description="Only jobs whose id contains it."),
    after: int | None = Query(None, ge=-1, description="The page after this seq."),
    before: int | None = Query(None, ge=0, description="The page before this seq."),
    limit: int = Query(50, ge=1, le=500),
) -> JobPage:
    """Jobs in input order. Page on with ``after=last_seq`` (or back with
    ``before=first_seq``) while ``has_more``."""
    agent = _agent(request)
    await _run(agent, run_id)
    rows, more = await asyncio.to_thread(
        agent.store.job_page, run_id, statuses=[str(s) for s in status], search=search,
        after_seq=after, before_seq=before, limit=limit)
    return JobPage(data=[JobRow.model_validate(r) for r in rows], has_more=more,
                   first_seq=rows[0]["seq"] if rows else None,
                   last_seq=rows[-1]["seq"] if rows else None)


@router.get("/v1/runs/{run_id}/jobs/{custom_id:path}", response_model=JobDetail,
            responses=_ERRORS, summary="One job")
async def job(request: Request, run_id: str, custom_id: str) -> JobDetail:
    """The job's request, result (the answer, or the error), usage, cost and attempts."""
    agent = _agent(request)
    await _run(agent, run_id)
    found = await asyncio.to_thread(agent.store.job_detail, run_id, custom_id)
    if found is None:
        raise HTTPError(404, "not_found_error", f"run {run_id!r} has no job {custom_id!r}")
    return JobDetail.model_validate(found)


def _resend_refusal(agent: HybridAgent, run: RunRow) -> str | None:
    """Why the run's jobs cannot be sent again from here (None: they can)."""
    store = agent.store
    if store.is_gateway_batch(run.id):
        return "a Message Batch's results cannot change once it has ended"
    if agent.is_live(run.id) or run.status in (RunStatus.RUNNING, RunStatus.INGESTING):
        return "the run is running: wait for it to end"
    if run.status in (RunStatus.CANCELED, RunStatus.INGEST_FAILED):
        return f"the run is {run.status}: it is not sent again"
    if not store.resendable(run.id):
        return "the run has no errored or expired jobs to send again"
    if not run.input_path or not Path(run.input_path).is_file():
        return f"the run's input {run.input_path!r} is gone: it cannot be resumed"
    return None


@router.post("/v1/runs/{run_id}/resend", response_model=ResendResult,
             responses={**_ERRORS, 409: {"model": ErrorBody,
                                         "description": "Nothing to send again, or the "
                                                        "run cannot be resumed."}},
             summary="Send a run's errored and expired jobs again")
async def resend(request: Request, run_id: str) -> ResendResult:
    """The run's errored and expired jobs (not its bad input lines) become pending and
    the run is resumed here, realtime, through the governor: the same run, its finished
    jobs untouched, each job's attempts carried on. Not for Message Batches made
    through the gateway, whose ended results cannot change."""
    agent = _agent(request)
    run = await _run(agent, run_id)
    problem = await agent.astore.call(_resend_refusal, agent, run)
    if problem is not None:
        raise HTTPError(409, "conflict_error", problem)
    resent = await agent.astore.call(agent.store.resend, run_id)
    options = run.options
    defaults = JobDefaults(model=options["model"], max_tokens=int(options["max_tokens"]),
                           system=options.get("system"))
    assert run.input_path is not None  # checked by _resend_refusal
    await agent.submit(Path(run.input_path), run_name=run.id, defaults=defaults,
                       mode="realtime")
    now = await _run(agent, run_id)
    return ResendResult(id=run_id, resent=resent, status=now.status)
