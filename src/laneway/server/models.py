"""The request and response bodies of ``laneway serve`` (they make its OpenAPI schema)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from laneway.store.statuses import RunStatus

#: ``openapi_extra`` key of the routes that answer with server-sent events.
SSE_MARK = "x-laneway-sse"


class ErrorDetail(BaseModel):
    type: str = Field(description="invalid_request_error, not_found_error, conflict_error, "
                                  "authentication_error, or the API's error type.")
    message: str


class ErrorBody(BaseModel):
    """Every error answer, in the API's shape (and the ``error`` event of a chat stream,
    which has no ``request_id``)."""

    type: Literal["error"] = "error"
    error: ErrorDetail
    request_id: str | None = Field(None, description="The answer's id, as its "
                                                     "``request-id`` header.")


# -- chat ---------------------------------------------------------------------------------
class ChatMessage(BaseModel):
    model_config = ConfigDict(extra="forbid")

    role: Literal["user", "assistant"]
    content: str


class ChatRequest(BaseModel):
    """One turn of a chat; the client keeps the history and sends it back each time."""

    model_config = ConfigDict(extra="forbid")

    message: str = Field(min_length=1, description="What the person just wrote.")
    history: list[ChatMessage] = Field(
        default_factory=list, description="Earlier turns, oldest first, user and assistant "
                                          "alternating.")
    system: str | None = Field(default=None, description="System prompt (default: the "
                                                         "server's --system).")
    model: str | None = Field(default=None, description="Model (default: the server's "
                                                        "--model).")
    max_tokens: int | None = Field(default=None, ge=1, le=128_000)


class ChatTextEvent(BaseModel):
    """``data:`` of each delta of the answer, as it is generated."""

    text: str


class ChatDoneEvent(BaseModel):
    """``data:`` of the last event of a successful answer."""

    done: Literal[True] = True
    text: str = Field(description="The whole answer.")
    usage: dict[str, int] = Field(description="The API's usage: input_tokens, "
                                              "output_tokens, cache tokens.")
    cost_usd: float | None = Field(description="null when the model's price is unknown.")
    ttft_ms: float | None = Field(description="Time to the first token, upstream.")
    tokens_per_s: float | None = None
    elapsed_ms: float
    stop_reason: str | None
    model: str = Field(description="The model that answered.")
    asked_model: str = Field(description="The model asked for.")
    asked_cost_usd: float | None = Field(
        description="What the asked model would have cost, when another answered.")
    note: str = Field(description="When another model than the asked one answered, the "
                                  "line that says both and what the asked would cost.")


class ChatStreamEvent(BaseModel):
    """The stream, in order: ``data: ChatTextEvent`` per delta, then ``data: ChatDoneEvent``;
    or, on failure, ``event: error`` with ``data: ErrorBody``."""

    text: ChatTextEvent | None = None
    done: ChatDoneEvent | None = None
    error: ErrorBody | None = None


# -- runs ---------------------------------------------------------------------------------
class RunInfo(BaseModel):
    id: str
    status: str = Field(description=", ".join(RunStatus) + ".")
    mode: str
    provider: str
    live: bool = Field(description="True while this server is executing the run.")
    created_at: float
    updated_at: float
    total: int
    done: int
    succeeded: int
    errored: int
    canceled: int
    expired: int
    pending: int
    percent: float
    input_tokens: int
    output_tokens: int
    cost_usd: float
    in_flight: int = 0
    rate_per_s: float | None = None
    note: str | None = Field(None, description="Why the run stopped short (where its "
                                               "ingest failed, a budget, a deadline).")
    resendable: int | None = Field(None, description="Errored or expired jobs `POST "
                                                     "/v1/runs/{id}/resend` would send "
                                                     "again (null in lists).")
    gateway_batch: bool | None = Field(None, description="A Message Batch made through "
                                                         "the gateway: its ended results "
                                                         "never change (null in lists).")
    models: list[str] = Field(default_factory=list, description=(
        "The models that answered: a name, or (where a Claude model was asked for and "
        "another answered) a line naming both, with what the asked one would cost."))


class RunList(BaseModel):
    data: list[RunInfo]


class CancelResult(BaseModel):
    id: str
    status: str
    canceled: int = Field(description="Jobs recorded as canceled.")
    batches_canceled: int = Field(0, description="Native batches the provider was asked "
                                                 "to cancel.")
    batches_still_running: int = Field(0, description="Canceled batches not ended within "
                                                      "the wait: cancel again later to "
                                                      "record what they finished.")
    billed: int = Field(0, description="Results the canceled batches had finished before "
                                       "the cancel: billed, so recorded.")
    billed_usd: float = Field(0.0, description="Their cost.")


class RunProgressEvent(BaseModel):
    """``data:`` of each ``event: progress`` of ``GET /v1/runs/{id}/events`` (and of the
    final ``event: end``)."""

    run_id: str
    status: str
    live: bool
    total: int
    done: int
    succeeded: int
    errored: int
    canceled: int
    pending: int
    percent: float
    in_flight: int
    input_tokens: int
    output_tokens: int
    cost_usd: float
    rate_per_s: float = Field(description="Jobs finished per second, recent window.")
    limit_use: float | None = Field(
        description="How drained the fullest-used bucket of a known rate limit is "
                    "(requests, input or output tokens per minute): 0 = full, 1 = empty, "
                    "requests are waiting for it; null if no limit is known.")
    limit_use_by_bucket: dict[str, float] = Field(default_factory=dict)
    governor: dict[str, Any] = Field(default_factory=dict,
                                     description="The governor's snapshot.")
    at: float = Field(description="Unix time of this event.")
    models: list[str] = Field(default_factory=list,
                              description="The models that answered (as RunInfo's).")


# -- traffic (the gateway) ----------------------------------------------------------------
class TrafficRow(BaseModel):
    """The requests of one client key, on one model, in one lane, since the server
    started."""

    key: str = Field(description="The client key's name (``local`` for requests without "
                                 "a laneway key).")
    model: str = Field(description="The model asked for.")
    answered_by: list[str] = Field(default_factory=list,
                                   description="The models that answered (the answers' "
                                               "``model``).")
    asked_cost_usd: float | None = Field(
        default=None, description="What the asked model would have cost, for the requests "
                                  "another model answered; null when none was.")
    lane: Literal["interactive", "background"]
    requests: int
    errors: int = Field(description="Answered with a status >= 400 (client_closed "
                                    "included).")
    client_closed: int = Field(description="The client left before its answer (499).")
    input_tokens: int
    output_tokens: int
    cache_creation_input_tokens: int
    cache_read_input_tokens: int
    cost_usd: float | None = Field(description="Of the requests with a known price; null "
                                               "when none has one.")
    unpriced: int = Field(description="Requests on a model with no known price.")
    queued_s_total: float = Field(description="Seconds waited for the governor, summed.")
    queued_s_max: float
    ttft_s_mean: float | None = Field(description="Time to first token (to the whole "
                                                  "answer when not streamed).")
    ttft_s_p50: float | None
    ttft_s_p95: float | None
    upstream_errors: int = Field(description="Upstream errors absorbed by trying again.")


class LaneCounts(BaseModel):
    interactive: int
    background: int


class LimitUse(BaseModel):
    """The most used bucket of each kind (over the models) during a timeline bucket:
    0 = full, 1 = spent; null when no limit of the kind is known or none was seen."""

    requests: float | None
    input: float | None
    output: float | None


class TrafficBucket(BaseModel):
    """One bucket of the timeline: the requests that finished in it."""

    t: float = Field(description="Unix time the bucket starts.")
    requests: LaneCounts
    errors: int
    input_tokens: int
    output_tokens: int
    limit_use: LimitUse


class LaneQueue(BaseModel):
    waiting: int = Field(description="Requests waiting for the governor.")
    in_flight: int = Field(description="Requests sent upstream, not answered yet.")


class QueueByLane(BaseModel):
    """Read live from the governor (the runs this server executes share it)."""

    interactive: LaneQueue
    background: LaneQueue


class BucketState(BaseModel):
    limit: int = Field(description="Per minute, the account's.")
    share: float = Field(1.0, description="This process's part of the limit (1 unless "
                                          "several gateway processes share the account).")
    level: float = Field(description="What is left of this process's part now.")
    use: float = Field(description="1 - level / (limit x share), within 0 and 1.")


class ModelLimits(BaseModel):
    buckets: dict[str, BucketState] = Field(description="requests, input, output: the "
                                                        "limits known (given or learnt).")
    paused_s: float = Field(description="How long the background lane stays paused.")
    concurrency: int = Field(description="The background lane's concurrency limit.")


class TrafficReport(BaseModel):
    """``GET /v1/laneway/traffic``: the gateway's live traffic (in memory)."""

    at: float = Field(description="Unix time of this report.")
    bucket_s: float = Field(description="Width of a timeline bucket, in seconds.")
    window_s: float = Field(description="How far back the timeline reaches.")
    keys: list[TrafficRow] = Field(description="Sorted by key, model and lane.")
    timeline: list[TrafficBucket] = Field(description="Oldest first, every bucket since "
                                                      "the server started (within the "
                                                      "window), empty ones included.")
    queue: QueueByLane
    limits: dict[str, ModelLimits] = Field(description="Per model.")
    process: str = Field("", description="The gateway process that answered: with "
                                         "several (--workers, or hosts on one "
                                         "PostgreSQL ledger) every figure here is its "
                                         "own; the ledger's gateway_requests has all.")
    processes: int = Field(1, description="Gateway processes sharing the account's "
                                          "limits, as last seen in the ledger.")


class HistoryRow(BaseModel):
    """The requests of one key, on one model, in one lane, over the window (the ledger's
    ``gateway_requests``; lane ``batch``: the jobs of the key's Message Batches)."""

    key: str = Field(description="The key's name (``local`` for requests without one).")
    key_id: str | None
    model: str
    lane: Literal["interactive", "background", "batch"]
    requests: int
    errors: int = Field(description="Answered >= 400 (batch: errored or expired).")
    unpriced: int = Field(description="Requests on a model with no known price.")
    input_tokens: int
    output_tokens: int
    cache_creation_input_tokens: int
    cache_read_input_tokens: int
    cost_usd: float = Field(description="Of the requests of known price.")
    queued_s_mean: float | None
    queued_s_max: float | None
    ttft_s_mean: float | None = Field(description="Null when nothing streamed content.")
    duration_s_mean: float | None
    upstream_errors: int
    answered_model: str | None = Field(None, description="The model that answered (null "
                                                         "when none did).")
    asked_cost_usd: float | None = Field(None, description="What the answers would have "
                                                           "cost on ``model`` when "
                                                           "another model answered.")


class Spend(BaseModel):
    """What one key, or one model, spent over the window."""

    name: str
    requests: int
    batch_requests: int = Field(description="Of which through Message Batches.")
    cost_usd: float
    batch_cost_usd: float = Field(description="Of which through Message Batches.")
    unpriced: int


class HistoryBucket(BaseModel):
    t: float = Field(description="Unix time the bucket starts.")
    requests: int
    errors: int
    input_tokens: int
    output_tokens: int
    cost_usd: float


class TrafficHistoryReport(BaseModel):
    """``GET /v1/laneway/traffic/history``: the gateway's traffic over a window, from the
    ledger (every process's, and it survives restarts)."""

    window: Literal["hour", "day", "week"]
    since: float = Field(description="Unix time the window starts.")
    at: float
    bucket_s: float
    keys: list[HistoryRow] = Field(description="By key, model and lane.")
    spend_by_key: list[Spend]
    spend_by_model: list[Spend]
    timeline: list[HistoryBucket] = Field(description="Oldest first, every bucket of the "
                                                      "window (empty ones included); "
                                                      "requests only, not batch jobs.")
