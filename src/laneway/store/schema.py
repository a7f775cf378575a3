"""The ledger's tables (SQLAlchemy Core), as they are now.

A change here needs a migration in :mod:`laneway.store.migrations` that makes it on an
existing ledger. The values of the ``status`` columns are in :mod:`laneway.store.statuses`.
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    Float,
    Index,
    Integer,
    MetaData,
    PrimaryKeyConstraint,
    String,
    Table,
    Text,
    UniqueConstraint,
)

metadata = MetaData()

schema_migrations = Table(
    "schema_migrations", metadata,
    Column("name", String(200), primary_key=True),
    Column("applied_at", Float, nullable=False),
)

runs = Table(
    "runs", metadata,
    Column("id", String(200), primary_key=True),
    Column("created_at", Float, nullable=False),
    Column("updated_at", Float, nullable=False),
    Column("input_path", Text),
    Column("input_sha256", String(64)),
    #: Hash of the input and of every option that changes a request.
    Column("fingerprint", String(64), nullable=False),
    Column("options", Text, nullable=False),
    Column("mode", String(20), nullable=False),
    Column("provider", String(20), nullable=False),
    #: A :class:`~laneway.store.statuses.RunStatus`.
    Column("status", String(20), nullable=False),
    Column("total", Integer, nullable=False, default=0),
    Column("ingested_lines", Integer, nullable=False, default=0),
    Column("ingest_done", Boolean, nullable=False, default=False),
    Column("budget_usd", Float),
    Column("deadline_at", Float),
    Column("output_path", Text),
    Column("output_written_at", Float),
    Column("note", Text),
    #: What its recorded results cost plus the worst case of its requests in flight
    #: (realtime, and native batches' ``reserved_usd``): its budget's reservations (see
    #: laneway.store.run_budget); 011b_run_budget.
    Column("committed_usd", Float, nullable=False, server_default="0"),
)

jobs = Table(
    "jobs", metadata,
    Column("run_id", String(200), nullable=False),
    Column("seq", Integer, nullable=False),
    Column("custom_id", String(300), nullable=False),
    Column("line", Integer, nullable=False),
    Column("params", Text, nullable=False),
    Column("model", String(200), nullable=False),
    #: A :class:`~laneway.store.statuses.JobStatus`.
    Column("status", String(20), nullable=False),
    Column("attempts", Integer, nullable=False, default=0),
    Column("rate_limited", Integer, nullable=False, default=0),
    Column("claimed_by", String(100)),
    Column("lease_until", Float),
    Column("batch_id", String(100)),
    Column("mode", String(20)),
    Column("result", Text),
    Column("input_tokens", Integer),
    Column("output_tokens", Integer),
    Column("cache_creation_input_tokens", Integer),
    Column("cache_read_input_tokens", Integer),
    Column("cost_usd", Float),
    Column("priced", Boolean),
    Column("error_type", String(100)),
    Column("error_message", Text),
    Column("updated_at", Float),
    Column("finished_at", Float),
    #: The model that answered (NULL until then, and on ledgers older than
    #: 007_answered_model); ``asked_cost_usd``: what its usage would have cost on
    #: ``model`` when another model answered (NULL otherwise, or with no price known).
    Column("answered_model", String(200)),
    Column("asked_cost_usd", Float),
    PrimaryKeyConstraint("run_id", "seq"),
    UniqueConstraint("run_id", "custom_id", name="uq_jobs_run_custom_id"),
)
Index("ix_jobs_run_status_seq", jobs.c.run_id, jobs.c.status, jobs.c.seq)
Index("ix_jobs_batch", jobs.c.batch_id)
#: Covers a run's counts and its timeline (added by 008_run_samples): neither reads the
#: rows' requests and results.
Index("ix_jobs_run_outcomes", jobs.c.run_id, jobs.c.status, jobs.c.finished_at, jobs.c.mode,
      jobs.c.input_tokens, jobs.c.output_tokens, jobs.c.cost_usd, jobs.c.priced)
#: Added by 011_holders: a gone holder's claims, found without reading every job.
Index("ix_jobs_claimed_by", jobs.c.claimed_by,
      postgresql_where=jobs.c.claimed_by.is_not(None),
      sqlite_where=jobs.c.claimed_by.is_not(None))

batches = Table(
    "batches", metadata,
    Column("id", String(100), primary_key=True),
    Column("run_id", String(200), nullable=False),
    #: The provider's msgbatch_ id, once ``create`` has returned it.
    Column("provider_batch_id", String(200)),
    #: A :class:`~laneway.store.statuses.BatchStatus`.
    Column("status", String(20), nullable=False),
    Column("request_count", Integer, nullable=False),
    Column("bytes", Integer, nullable=False),
    Column("created_at", Float, nullable=False),
    Column("submitted_at", Float),
    Column("ended_at", Float),
    Column("counts", Text),
    Column("claimed_by", String(100)),
    #: The owner's lease (polling and result streaming); added by 002_batch_leases.
    Column("lease_until", Float),
    #: The worst case of its requests still reserved of its run's budget (in
    #: ``runs.committed_usd``, see laneway.store.run_budget); added by 012_batch_budget.
    Column("reserved_usd", Float, nullable=False, server_default="0"),
)
Index("ix_batches_run", batches.c.run_id, batches.c.status)

#: Progress and governor snapshots over time, for the dashboard and summaries.
events = Table(
    "events", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("run_id", String(200), nullable=False),
    Column("at", Float, nullable=False),
    Column("kind", String(50), nullable=False),
    Column("data", Text, nullable=False),
)
Index("ix_events_run_at", events.c.run_id, events.c.at)

#: Rate-limit pauses shared between workers (one row per model).
pauses = Table(
    "pauses", metadata,
    Column("model", String(200), primary_key=True),
    Column("until", Float, nullable=False),
    Column("reason", Text),
)

#: Client keys of the gateway (``laneway keys``); added by 003_gateway. Only a hash of
#: each key is kept; ``prefix`` (its first 12 characters) finds the row and names it in
#: lists. A revoked key keeps its row, so its traffic still has a name.
gateway_keys = Table(
    "gateway_keys", metadata,
    Column("id", String(40), primary_key=True),
    Column("name", String(200), nullable=False),
    Column("prefix", String(20), nullable=False),
    #: SHA-256 (hex) of the whole key.
    Column("key_hash", String(64), nullable=False),
    Column("budget_usd", Float),
    Column("rpm", Integer),
    #: A :class:`~laneway.governor.buckets.Lane` every request of the key is put in.
    Column("lane", String(20)),
    Column("created_at", Float, nullable=False),
    Column("revoked_at", Float),
    #: Added by 006_reservations: what the key's settled requests cost (USD) ...
    Column("spent_usd", Float, nullable=False, server_default="0"),
    #: ... the worst cases of its requests in flight ...
    Column("reserved_usd", Float, nullable=False, server_default="0"),
    #: ... and of its requests whose end was never seen (``laneway keys settle``).
    Column("held_usd", Float, nullable=False, server_default="0"),
    #: JSON list of the wall-clock times of its last ``rpm`` requests: its rate until
    #: 013_rate_bucket, no longer written.
    Column("sent_at", Text),
    #: Added by 013_rate_bucket: when the key's rate bucket is full again (wall clock; its
    #: "theoretical arrival time", see laneway.store.keys.rate_wait); NULL: full.
    Column("rate_tat", Float),
    UniqueConstraint("name", name="uq_gateway_keys_name"),
)
Index("ix_gateway_keys_prefix", gateway_keys.c.prefix)

#: One row per request the gateway answered; added by 003_gateway.
gateway_requests = Table(
    "gateway_requests", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    #: ``gateway_keys.id``; NULL for an anonymous client on loopback.
    Column("key_id", String(40)),
    Column("model", String(200), nullable=False),
    Column("lane", String(20), nullable=False),
    #: The HTTP status the client was answered with.
    Column("status", Integer, nullable=False),
    Column("streamed", Boolean, nullable=False),
    Column("input_tokens", Integer, nullable=False),
    Column("output_tokens", Integer, nullable=False),
    Column("cache_creation_input_tokens", Integer, nullable=False),
    Column("cache_read_input_tokens", Integer, nullable=False),
    #: NULL when the model's price is not known.
    Column("cost_usd", Float),
    Column("queued_s", Float, nullable=False),
    Column("ttft_s", Float),
    Column("duration_s", Float, nullable=False),
    #: Upstream errors the gateway's retries absorbed before this answer.
    Column("upstream_errors", Integer, nullable=False),
    Column("started_at", Float, nullable=False),
    #: Added by 006_reservations: ``reserved`` (written before the upstream is called),
    #: ``done``, ``interrupted`` (its end never seen: charged its worst case, held) or
    #: ``released`` (a hold an operator settled).
    Column("state", String(20), nullable=False, server_default="done"),
    #: The most the request can cost (reserved against its key's budget).
    Column("worst_usd", Float),
    #: The process holding the reservation (``host:pid:token``).
    Column("process", String(100)),
    #: The gateway Message Batch this row reserves for.
    Column("batch_id", String(40)),
    Column("note", Text),
    #: The model that answered, and what the usage would have cost on ``model`` (the
    #: one asked for) when another answered; added by 007_answered_model.
    Column("answered_model", String(200)),
    Column("asked_cost_usd", Float),
)
Index("ix_gateway_requests_key", gateway_requests.c.key_id)
Index("ix_gateway_requests_started", gateway_requests.c.started_at)
Index("ix_gateway_requests_state", gateway_requests.c.state)
Index("ix_gateway_requests_batch", gateway_requests.c.batch_id)

#: Message Batches made through the gateway; added by 004_gateway_batches. Each is a run
#: of the ledger named by the batch's id (``runs.id``); this row holds what the API's
#: batch object has and a run has not.
gateway_batches = Table(
    "gateway_batches", metadata,
    #: Creation order (``list`` pages newest first by it).
    Column("seq", Integer, primary_key=True, autoincrement=True),
    Column("id", String(40), nullable=False),
    #: ``gateway_keys.id`` of the key that made it; NULL for the anonymous local client.
    Column("key_id", String(40)),
    Column("request_count", Integer, nullable=False),
    Column("created_at", Float, nullable=False),
    Column("expires_at", Float, nullable=False),
    #: ``laneway-deadline``, as a UNIX time.
    Column("deadline_at", Float),
    #: How it is fulfilled: ``native``, ``realtime`` or ``hybrid``; and why.
    Column("mode", String(20), nullable=False),
    Column("plan", Text),
    #: The run's input (NULL when no request had valid params).
    Column("input_path", Text),
    #: ``[[custom_id, result], ...]`` of requests refused before the run (bad params).
    Column("rejected", Text),
    Column("cancel_initiated_at", Float),
    Column("ended_at", Float),
    Column("deleted_at", Float),
    UniqueConstraint("id", name="uq_gateway_batches_id"),
)
Index("ix_gateway_batches_key", gateway_batches.c.key_id, gateway_batches.c.seq)

#: What each live gateway process wants of the account's limits and the part of them it
#: holds, per model (one row per process and model, and a presence row with model
#: ``''``); added by 005_rate_shares. ``heartbeat_at`` is the database's clock (Unix
#: seconds), so hosts' clocks need not agree.
rate_shares = Table(
    "rate_shares", metadata,
    Column("process", String(100), primary_key=True),
    Column("model", String(200), primary_key=True),
    Column("host", String(200), nullable=False),
    Column("pid", Integer, nullable=False),
    #: What it wants: requests, input tokens and output tokens per minute.
    Column("want_requests", Float, nullable=False),
    Column("want_input", Float, nullable=False),
    Column("want_output", Float, nullable=False),
    #: The part of each limit it holds (0-1); the live rows' grants sum to at most 1.
    Column("grant_requests", Float, nullable=False),
    Column("grant_input", Float, nullable=False),
    Column("grant_output", Float, nullable=False),
    #: The account's limits per minute as this process knows them (given or learnt),
    #: so a process that has not learnt them yet starts from them.
    Column("limit_requests", Integer),
    Column("limit_input", Integer),
    Column("limit_output", Integer),
    Column("heartbeat_at", Float, nullable=False),
)

#: A running run's samples over time, written by its runner about once a second (jobs
#: done, requests in flight, the rate limits' use: 0 = full, 1 = spent); added by
#: 008_run_samples. Runs made before it have none.
run_samples = Table(
    "run_samples", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("run_id", String(200), nullable=False),
    Column("at", Float, nullable=False),
    Column("done", Integer, nullable=False),
    Column("in_flight", Integer, nullable=False),
    #: The most used bucket's use; NULL when no limit is known.
    Column("limit_use", Float),
    #: ``{"model:bucket": use}`` as JSON.
    Column("limit_use_by_bucket", Text),
)
Index("ix_run_samples_run_at", run_samples.c.run_id, run_samples.c.at)
#: The processes that hold claims (jobs, native batches), by worker id, and where they
#: run, so a process on the same host can tell one that is gone (see
#: :mod:`laneway.store.holders`); added by 011_holders.
holders = Table(
    "holders", metadata,
    Column("id", String(100), primary_key=True),
    Column("host", String(200), nullable=False),
    #: ``/proc/self/ns/pid`` (e.g. ``pid:[4026531836]``): processes of one host in other
    #: PID namespaces (containers) are not judged by their pid.
    Column("pid_ns", String(64)),
    Column("pid", Integer, nullable=False),
    #: The pid's start time (clock ticks since boot): tells a reused pid.
    Column("pid_start", BigInteger),
    Column("boot_id", String(64)),
    Column("since", Float, nullable=False),
)
Index("ix_holders_host", holders.c.host)
