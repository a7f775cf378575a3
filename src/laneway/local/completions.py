"""What the local API has answered in full: the bill a client ran up, to compare with
what its output says (``GET /v1/laneway/completions``, or ``LocalAPI.completions`` in
process).

A client's own count of its results says what it recorded, not what it was billed for:
a job sent twice is recorded once. ``completed`` counts answers generated to the end and
sent whole, also per request content (keyed by the text of the request's last user turn;
a test gives each job its own prompt); ``completed_after_drop`` counts answers generated
to the end whose connection was then cut (the ``drop`` fault), the one double payment no
client can avoid. Answers that failed before their end (a stall, an error mid-stream, a
drop mid-stream) are not counted: they are not billed.
"""

from __future__ import annotations

from collections import Counter


class Completions:
    def __init__(self) -> None:
        self.answered: Counter[str] = Counter()
        self.dropped: Counter[str] = Counter()

    def record(self, key: str, *, dropped: bool = False) -> None:
        (self.dropped if dropped else self.answered)[key] += 1

    @property
    def completed(self) -> int:
        return sum(self.answered.values())

    @property
    def completed_after_drop(self) -> int:
        return sum(self.dropped.values())

    @property
    def total(self) -> int:
        return self.completed

    def more_than_once(self) -> dict[str, int]:
        """The keys answered more than once, with how many times."""
        return {k: n for k, n in self.answered.items() if n > 1}

    def as_json(self) -> dict[str, int]:
        return {"completed": self.completed, "completed_after_drop": self.completed_after_drop}
