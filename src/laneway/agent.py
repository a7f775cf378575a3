"""HybridAgent: stream answers to a person and run background jobs, through one governor.

>>> async with HybridAgent(model="claude-haiku-4-5") as agent:
...     run_id = await agent.submit([{"id": "a", "prompt": "Summarize ..."}])
...     turn = await agent.respond("What is laneway?", on_text=show)
...     agent.progress(run_id)
...     results = await agent.results(run_id)

Both kinds of work go through ONE provider client and ONE :class:`Governor`: the
person's stream uses the interactive lane, which is admitted before any waiting
background request and may use the headroom background work must leave free.

Background work is a laneway run in the ledger, exactly as ``laneway run`` makes one:
jobs given as a list are first written to a JSONL file beside the ledger, so the run can
be resumed (by this agent, another one, or ``laneway run`` on that file) after a crash.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
from collections.abc import Awaitable, Callable, Iterable, Mapping
from pathlib import Path
from types import TracebackType
from typing import Any

from laneway.chat import Conversation, Turn
from laneway.errors import ConfigError
from laneway.governor.buckets import RateLimits
from laneway.governor.core import Governor
from laneway.jobs.formats import DEFAULT_MODEL, Job, JobDefaults
from laneway.provider.backend import open_provider
from laneway.provider.client import OnText, Provider
from laneway.runs.background import BackgroundRuns
from laneway.runs.progress import Progress, progress_of
from laneway.store import AsyncStore, Store, StoreSettings, open_store

log = logging.getLogger("laneway.agent")


class HybridAgent:
    """One provider, one governor, one ledger: see the module docstring."""

    def __init__(
        self, *, provider: Provider | str = "auto", governor: Governor | None = None,
        db: str | Path | None = None, model: str = DEFAULT_MODEL, system: str | None = None,
        max_tokens: int = 1024, limits: RateLimits | None = None,
        concurrency: int | None = None, max_attempts: int = 6,
        progress_interval_s: float = 1.0, shutdown_grace_s: float = 5.0, quiet: bool = True,
    ) -> None:
        self._provider_arg = provider
        self._provider: Provider | None = provider if isinstance(provider, Provider) else None
        self.governor = governor or Governor(limits=limits)
        self.settings = StoreSettings.from_dsn(db)
        self.model = model
        self.system = system
        self.max_tokens = max_tokens
        self.concurrency = concurrency
        self.max_attempts = max_attempts
        self.progress_interval_s = progress_interval_s
        self.shutdown_grace_s = shutdown_grace_s
        self.quiet = quiet
        self._store: Store | None = None
        self._astore: AsyncStore | None = None
        self._runs: BackgroundRuns | None = None
        self._conversation: Conversation | None = None

    # -- lifetime ------------------------------------------------------------------------
    async def __aenter__(self) -> HybridAgent:
        await self.open()
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None,
                        exc: BaseException | None, tb: TracebackType | None) -> None:
        await self.aclose()

    async def open(self) -> None:
        if self._store is None:
            self._store = await asyncio.to_thread(open_store, self.settings)
            self._astore = AsyncStore(self._store)
        if self._provider is None:
            name = str(self._provider_arg)
            self._provider = await asyncio.to_thread(open_provider, name, quiet=self.quiet)
        if self._runs is None:
            self._runs = BackgroundRuns(
                self.astore, self.provider, self.governor, concurrency=self.concurrency,
                max_attempts=self.max_attempts, event_every_s=self.progress_interval_s)

    async def aclose(self) -> None:
        """Stop background runs (jobs not finished stay pending in the ledger) and close:
        requests in flight get ``shutdown_grace_s`` to finish (they are paid for), then
        are abandoned; nothing new is sent meanwhile."""
        if self._runs is not None:
            await self._runs.aclose(self.shutdown_grace_s)
            self._runs = None
        if self._provider is not None and not isinstance(self._provider_arg, Provider):
            await self._provider.aclose()
            self._provider = None
        if self._astore is not None:
            self._astore.close()
            self._astore = None
        if self._store is not None:
            self._store.close()
            self._store = None

    @property
    def provider(self) -> Provider:
        if self._provider is None:
            raise ConfigError("the agent is not open: use `async with HybridAgent(...)`")
        return self._provider

    @property
    def store(self) -> Store:
        if self._store is None:
            raise ConfigError("the agent is not open: use `async with HybridAgent(...)`")
        return self._store

    @property
    def runs(self) -> BackgroundRuns:
        """The agent's background runs (:mod:`laneway.runs.background`)."""
        if self._runs is None:
            raise ConfigError("the agent is not open: use `async with HybridAgent(...)`")
        return self._runs

    @property
    def astore(self) -> AsyncStore:
        if self._astore is None:
            raise ConfigError("the agent is not open: use `async with HybridAgent(...)`")
        return self._astore

    # -- streaming for a person ----------------------------------------------------------
    def conversation(self, *, history: list[dict[str, Any]] | None = None,
                     system: str | None = None, model: str | None = None,
                     max_tokens: int | None = None) -> Conversation:
        """A new conversation on the agent's provider and governor (interactive lane)."""
        return Conversation(
            self.provider, model=model or self.model,
            system=system if system is not None else self.system,
            max_tokens=max_tokens or self.max_tokens, governor=self.governor,
            history=history)

    @property
    def chat(self) -> Conversation:
        """The agent's own conversation, used by :meth:`respond`."""
        if self._conversation is None:
            self._conversation = self.conversation()
        return self._conversation

    async def respond(self, text: str, *, on_text: OnText | None = None) -> Turn:
        """Stream the answer to ``text`` in the agent's conversation (interactive lane)."""
        return await self.chat.send(text, on_text=on_text)

    # -- background work -----------------------------------------------------------------
    async def submit(
        self, jobs: str | Path | Iterable[Job | Mapping[str, Any]], *,
        run_name: str | None = None, defaults: JobDefaults | None = None,
        mode: str = "realtime", deadline_at: float | None = None,
        on_no_batches: Callable[[str], Awaitable[bool]] | None = None,
    ) -> str:
        """Start (or resume) a background run of ``jobs``; returns its run id at once.

        ``jobs`` is a JSONL path, or job lines (``{"id", "prompt"}`` or
        ``{"custom_id", "params"}`` dicts, or :class:`Job`), written to a file first.
        ``mode``: ``realtime`` through the governor's background lane, ``native``
        (the provider's Message Batches), or ``hybrid`` (batches, and what is not
        finished near ``deadline_at`` realtime). A canceled run only collects what its
        batches still hold. ``on_no_batches``: see :class:`~laneway.runs.execute.Execution`.
        """
        defaults = defaults or JobDefaults(model=self.model, max_tokens=self.max_tokens,
                                           system=self.system)
        config = self.runs.config(run_name=run_name, mode=mode, defaults=defaults,
                                  deadline_at=deadline_at)
        path = Path(jobs) if isinstance(jobs, str | Path) else \
            await asyncio.to_thread(self._write_jobs, jobs)
        return await self.runs.start(path, config, on_no_batches=on_no_batches)

    def _write_jobs(self, jobs: Iterable[Job | Mapping[str, Any]]) -> Path:
        lines = []
        for job in jobs:
            obj = {"custom_id": job.custom_id, "params": job.params} \
                if isinstance(job, Job) else dict(job)
            lines.append(json.dumps(obj, sort_keys=True, ensure_ascii=False))
        if not lines:
            raise ConfigError("no jobs to submit")
        blob = ("\n".join(lines) + "\n").encode()
        return self.save_input(blob)

    def save_input(self, blob: bytes) -> Path:
        """Keep a JSONL input beside the ledger (named by its content) and return its path."""
        base = self.settings.path.parent if self.settings.path is not None else Path(".laneway")
        folder = base / "inputs"
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / f"jobs-{hashlib.sha256(blob).hexdigest()[:16]}.jsonl"
        if not path.exists():
            tmp = path.with_suffix(".tmp")
            tmp.write_bytes(blob)
            tmp.replace(path)
        return path

    def is_live(self, run_id: str) -> bool:
        return self.runs.is_live(run_id)

    def progress(self, run_id: str) -> Progress:
        """Where a run is now: live counters if this agent runs it, else the ledger's."""
        watch = self.runs.watch(run_id)
        if watch is not None:
            return watch.progress()
        run_row = self.store.get_run(run_id)
        if run_row is None:
            raise ConfigError(f"no run named {run_id!r} in {self.settings}")
        counts = self.store.counts(run_id)
        return progress_of(run_id, counts.total, counts,
                           phase="done" if counts.remaining == 0 else run_row.status)

    async def wait(self, run_id: str, *, timeout_s: float | None = None) -> None:
        """Wait until this agent's run of ``run_id`` ends (at once if it is not running)."""
        await self.runs.wait(run_id, timeout_s=timeout_s)

    async def results(self, run_id: str, *, wait: bool = True,
                      timeout_s: float | None = None) -> list[tuple[str, dict[str, Any]]]:
        """``(custom_id, result)`` of every finished job, in input order (with ``wait``,
        the default, once the run has ended)."""
        if wait:
            await self.wait(run_id, timeout_s=timeout_s)
        if await self.astore.get_run(run_id) is None:
            raise ConfigError(f"no run named {run_id!r} in {self.settings}")
        return await self.astore.results(run_id)

    async def cancel(self, run_id: str) -> int:
        """Stop a run: requests in flight are abandoned and every job not finished is
        recorded as ``canceled`` (its batches at the provider are left as they are:
        ``laneway cancel`` cancels those). Returns the number of jobs canceled."""
        return await self.runs.cancel(run_id)

    async def stop_live(self, run_id: str) -> None:
        """Stop this agent's work on ``run_id`` for a cancel (see
        :meth:`~laneway.runs.background.BackgroundRuns.stop_live`)."""
        await self.runs.stop_live(run_id)
