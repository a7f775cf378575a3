"""What the local API answered: completed answers per request content.

A client's own count of its results says what it recorded, not what it was billed for:
a job sent twice is recorded once. Tests and benchmarks read this tally (in process from
``LocalAPI.completions``, or over HTTP from ``GET /v1/laneway/completions``) to count
what the server really completed for each request, keyed by the text of the request's
last user turn (a test gives each job its own prompt). An answer the server finished
but whose connection it then cut (the ``drop`` fault) is counted apart, in ``dropped``:
no client can avoid paying for those twice.
"""

from __future__ import annotations

from collections import Counter
from typing import Any


class Completions:
    def __init__(self) -> None:
        self.answered: Counter[str] = Counter()
        self.dropped: Counter[str] = Counter()

    def record(self, key: str, *, dropped: bool = False) -> None:
        (self.dropped if dropped else self.answered)[key] += 1

    @property
    def total(self) -> int:
        return sum(self.answered.values())

    def more_than_once(self) -> dict[str, int]:
        """The keys answered more than once, with how many times."""
        return {k: n for k, n in self.answered.items() if n > 1}

    def as_json(self) -> dict[str, Any]:
        return {"total": self.total, "keys": len(self.answered),
                "more_than_once": self.more_than_once(),
                "answered": dict(self.answered), "dropped": dict(self.dropped)}
