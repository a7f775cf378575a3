"""Ingest: turn an input file into a run's jobs in the ledger, once, resumably.

A run is identified by a fingerprint of the input's bytes and of every option that
changes a request (default model, max_tokens, system). The same command again finds
the same run; a run name reused with a different input or options is refused, saying
what differs. Ingest writes jobs in chunks, each with the line it reached, so an
interrupted ingest continues where it stopped.

An ingest that stops at a bad line marks its run ``ingest_failed`` (with the line and
the reason, which ``laneway status`` shows): nothing of such a run is claimed or sent.
The same command on the fixed input replaces it (a run whose jobs were never sent), or
resumes it when the input is the same (``--skip-invalid`` records the bad lines).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from laneway.errors import InputError, RunMismatchError, StoreError
from laneway.jobs.formats import BadLine, Job, JobDefaults, read_jobs
from laneway.runs import status as run_status
from laneway.store import RunRow, Store
from laneway.store.runlock import hold_run, ingest_lock
from laneway.store.statuses import RunStatus

CHUNK = 2000


def file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    try:
        with path.open("rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                h.update(block)
    except FileNotFoundError:
        raise InputError("no such file", path=path) from None
    except IsADirectoryError:
        raise InputError("is a directory, not a JSONL file", path=path) from None
    except OSError as exc:  # permission denied, an I/O error
        raise InputError(f"cannot read: {exc.strerror}", path=path) from None
    return h.hexdigest()


def request_options(defaults: JobDefaults) -> dict[str, Any]:
    """The options that change what is sent (and so belong to a run's identity)."""
    return {"model": defaults.model, "max_tokens": defaults.max_tokens,
            "system": defaults.system}


def fingerprint(input_sha256: str, defaults: JobDefaults) -> str:
    blob = json.dumps({"input": input_sha256, **request_options(defaults)}, sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()


def default_run_id(path: Path, fp: str) -> str:
    stem = "".join(c if c.isalnum() or c in "-_" else "-" for c in path.stem)[:40] or "run"
    return f"{stem}-{fp[:8]}"


def check_same(run: RunRow, fp: str, options: dict[str, Any], input_sha256: str) -> None:
    if run.fingerprint == fp:
        return
    old = run.options
    diffs = [f"{k}: {old.get(k)!r} then, {v!r} now" for k, v in options.items()
             if old.get(k) != v and k != "input_sha256"]
    if old.get("input_sha256") != input_sha256:
        diffs.insert(0, "the input file's content changed")
    raise RunMismatchError(
        f"run {run.id!r} was started with different input or options "
        f"({'; '.join(diffs) or 'fingerprint differs'}): use another --run name, or the "
        "same input and options to resume it"
    )


def ingest(
    store: Store, run: RunRow, path: Path, *, defaults: JobDefaults, skip_invalid: bool,
    on_progress: Callable[[int], None] | None = None,
) -> int:
    """Write the input's jobs into the run (continuing an interrupted ingest).

    Returns the number of jobs in the run. Raises :class:`InputError` on a bad line
    (unless ``skip_invalid``), a duplicate id, or an input with no jobs, and marks the
    run ``ingest_failed`` first.
    """
    with ingest_lock(store, run.id):
        # Another process may have ingested (some of) it meanwhile: go on from its mark.
        run = store.get_run(run.id) or run
        if run.ingest_done:
            return run.total
        try:
            return _ingest(store, run, path, defaults=defaults, skip_invalid=skip_invalid,
                           on_progress=on_progress)
        except InputError as exc:
            run_status.ingest_failed(store, run.id, failure_note(exc))
            raise


def failure_note(exc: InputError) -> str:
    """What ``laneway status`` says of a run whose ingest stopped at ``exc``."""
    where = f" at line {exc.line}" if exc.line is not None else ""
    reason = f"{exc.field}: {exc.reason}" if exc.field else exc.reason
    return f"ingest failed{where}: {reason}; fix the input and run the same command again"


def replace_failed(store: Store, *, run_id: str, fingerprint: str, input_path: str) -> None:
    """Drop the runs this command replaces: its own name, or the same input file, whose
    ingest failed and none of whose jobs were sent (a run with results is kept)."""
    for old in store.failed_ingests(input_path):
        if old.id != run_id:
            _drop_unsent(store, old.id)
    named = store.get_run(run_id)
    if (named is not None and named.status == RunStatus.INGEST_FAILED
            and named.fingerprint != fingerprint):
        _drop_unsent(store, run_id)


def _drop_unsent(store: Store, run_id: str) -> None:
    try:
        lock = hold_run(store.settings, run_id)
    except StoreError:
        return  # another process is on it (resuming it): leave it be
    try:
        if store.sent_jobs(run_id) == 0:
            store.delete_run(run_id)
    finally:
        if lock is not None:
            lock.release()


def _ingest(
    store: Store, run: RunRow, path: Path, *, defaults: JobDefaults, skip_invalid: bool,
    on_progress: Callable[[int], None] | None,
) -> int:
    seq = run.total
    chunk: list[Job | BadLine] = []
    last_line = run.ingested_lines
    for item in read_jobs(path, defaults=defaults, skip_invalid=skip_invalid,
                          start_line=run.ingested_lines):
        chunk.append(item)
        last_line = item.line
        if len(chunk) >= CHUNK:
            _add(store, run.id, chunk, seq, last_line, path, skip_invalid)
            seq += len(chunk)
            chunk = []
            if on_progress is not None:
                on_progress(seq)
    _add(store, run.id, chunk, seq, last_line, path, skip_invalid)
    seq += len(chunk)
    if seq == 0:
        raise InputError("no jobs: the file is empty (or has only blank lines)", path=path)
    run_status.ingested(store, run.id, seq)
    if on_progress is not None:
        on_progress(seq)
    return seq


def _add(store: Store, run_id: str, chunk: list[Job | BadLine], seq: int, last_line: int,
         path: Path, skip_invalid: bool) -> None:
    """Insert a chunk; with ``skip_invalid``, a duplicate id becomes a bad line instead."""
    while True:
        try:
            store.add_jobs(run_id, chunk, first_seq=seq, last_line=last_line, path=str(path))
            return
        except InputError as exc:
            if not skip_invalid or exc.field != "custom_id" or exc.line is None:
                raise
            at = next(i for i, item in enumerate(chunk)
                      if item.line == exc.line and isinstance(item, Job))
            chunk[at] = BadLine(custom_id=f"invalid-line-{exc.line}", error=exc, line=exc.line)
