"""What a page reads of a run at rest, kept until the run's row changes.

A run nothing works on (ended, and not live in this process) cannot change without its
row changing first: a resume, a re-send or a cancel writes ``status``/``updated_at``
before any job moves. So what was read of it (its counts, its timeline: hundreds of
milliseconds for 100,000 jobs) is kept under the row's version and read again only
when the version differs.
"""

from __future__ import annotations

from collections.abc import Hashable
from typing import Generic, TypeVar

from laneway.store import RunRow

T = TypeVar("T")


class AtRest(Generic[T]):
    """Up to ``size`` runs' values, each under its run row's version; oldest dropped."""

    def __init__(self, size: int) -> None:
        self.size = size
        self._kept: dict[str, tuple[Hashable, T]] = {}

    @staticmethod
    def version(run: RunRow, *extra: Hashable) -> Hashable:
        return (run.updated_at, str(run.status), *extra)

    def get(self, run_id: str, version: Hashable) -> T | None:
        kept = self._kept.get(run_id)
        return kept[1] if kept is not None and kept[0] == version else None

    def put(self, run_id: str, version: Hashable, value: T) -> None:
        self._kept.pop(run_id, None)
        self._kept[run_id] = (version, value)
        while len(self._kept) > self.size:
            self._kept.pop(next(iter(self._kept)))
