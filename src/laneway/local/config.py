"""Settings of the local API (what ``laneway local`` takes as options)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True, kw_only=True)
class LocalConfig:
    #: ``echo`` (deterministic, for tests) or ``smollm2`` (a real model).
    engine: str = "echo"
    #: Echo engine latency: before the first token, and between tokens.
    ttft_ms: float = 0.0
    token_ms: float = 0.0
    #: Simulated rate limits per minute (``None``: unlimited, no rate-limit headers).
    rpm: int | None = None
    itpm: int | None = None
    otpm: int | None = None
    #: Fault rates, e.g. ``529=0.05,drop=0.01`` (see :mod:`laneway.local.faults`).
    faults: str = ""
    fault_retry_after_s: int = 5
    #: How long a stalled request keeps the client waiting.
    stall_s: float = 300.0
    seed: int = 0
    #: When set, every request must carry this key.
    api_key: str | None = None
    #: Shrinks the 24 h batch expiry: 0.0001 makes it 8.6 s.
    batch_time_scale: float = 1.0
    batch_concurrency: int = 4
    #: A batch stays in progress at least this long (to test clients that poll).
    batch_min_s: float = 0.0
    #: False: no Message Batches (``/v1/messages/batches`` answers 404, as an upstream
    #: without them does).
    batches: bool = True
    #: Shrinks prompt-cache lifetimes (5 min, 1 h): 0.001 makes 5 min 0.3 s.
    cache_time_scale: float = 1.0
    #: Message threads held at most (each reply a thread can continue from counts one),
    #: and their JSON size; the least recently used go first (see laneway.local.threads).
    thread_max_count: int = 10_000
    thread_max_bytes: int = 256 * 1024 * 1024
    #: Base URL clients reach the server at (``results_url`` is built on it), e.g. a
    #: proxy's. ``None``: the address the server listens on, never a request's Host.
    public_url: str | None = None
