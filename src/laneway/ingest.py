"""Ingest: turn an input file into a run's jobs in the ledger, once, resumably.

A run is identified by a fingerprint of the input's bytes and of every option that
changes a request (default model, max_tokens, system). The same command again finds
the same run; a run name reused with a different input or options is refused, saying
what differs. Ingest writes jobs in chunks, each with the line it reached, so an
interrupted ingest continues where it stopped.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from laneway.errors import InputError, RunMismatchError
from laneway.jobs import BadLine, Job, JobDefaults, read_jobs
from laneway.store import RunRow, Store

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
    (unless ``skip_invalid``), a duplicate id, or an input with no jobs.
    """
    if run.ingest_done:
        return run.total
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
    store.update_run(run.id, ingest_done=True, total=seq, status="ready")
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
