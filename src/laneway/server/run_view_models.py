"""The bodies of a run looked into (``GET /v1/runs/{id}/timeline``, ``.../jobs``,
``.../jobs/{custom_id}``, ``POST .../resend``): what the run's page reads."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field


class TimelineBucket(BaseModel):
    """What finished in one bucket of the run's time, and its samples' peaks."""

    t: float = Field(description="Unix time the bucket starts.")
    succeeded: int
    errored: int = Field(description="Errored or expired (canceled jobs are not counted: "
                                     "they were never sent).")
    input_tokens: int
    output_tokens: int
    cost_usd: float
    limit_use: float | None = Field(description="Peak use of the fullest rate-limit "
                                                "bucket in the runner's samples (0 = "
                                                "full, 1 = spent); null without samples.")
    in_flight: int | None = Field(description="Peak requests in flight; null without "
                                              "samples.")


class RunTimeline(BaseModel):
    """A run over its time, from the ledger alone (the same whether it was watched)."""

    run_id: str
    start: float | None = Field(description="The first outcome or sample; null if none.")
    end: float | None
    bucket_s: float = Field(description="Width of a bucket, in seconds.")
    rate_per_s: float = Field(description="Jobs finished per second from start to end.")
    samples: bool = Field(description="Whether the runner's samples (rate-limit use, in "
                                      "flight) are in the ledger: runs made before laneway "
                                      "kept them, and native batches, have none.")
    buckets: list[TimelineBucket] = Field(description="Oldest first, empty ones included.")


class JobRow(BaseModel):
    seq: int = Field(description="Input order (0-based); the page's cursor.")
    custom_id: str
    status: str
    model: str
    attempts: int
    mode: str | None = Field(description="How it ended: realtime, native, ingest (a bad "
                                         "input line), canceled.")
    input_tokens: int | None
    output_tokens: int | None
    cost_usd: float | None
    error_type: str | None
    error_message: str | None = Field(description="Its first 160 characters.")
    finished_at: float | None


class JobPage(BaseModel):
    data: list[JobRow]
    has_more: bool = Field(description="More jobs in the direction paged (after the last "
                                       "with ``after``, before the first with ``before``).")
    first_seq: int | None
    last_seq: int | None


class JobDetail(BaseModel):
    """One job whole: its request, its result, its usage, cost and tries."""

    seq: int
    custom_id: str
    line: int = Field(description="Its line in the run's input.")
    status: str
    model: str
    attempts: int
    rate_limited: int = Field(description="Times it was held back by a 429 (no attempt).")
    mode: str | None
    batch_id: str | None
    input_tokens: int | None
    output_tokens: int | None
    cache_creation_input_tokens: int | None
    cache_read_input_tokens: int | None
    cost_usd: float | None
    priced: bool | None
    error_type: str | None
    error_message: str | None
    updated_at: float | None
    finished_at: float | None
    params: dict[str, Any] = Field(description="The Messages API request.")
    result: dict[str, Any] | None = Field(description="The Message Batches result: "
                                                      "succeeded with its message, or "
                                                      "errored/canceled/expired.")


class ResendResult(BaseModel):
    id: str
    resent: int = Field(description="Errored or expired jobs made pending and sent again.")
    status: str = Field(description="The run's status now.")
