"""What the local API has answered in full: the bill a client ran up, to compare with
what its output says (``GET /v1/laneway/completions``).

``completed`` counts answers generated to the end and sent whole; ``completed_after_drop``
counts answers generated to the end whose connection was then cut (the ``drop`` fault),
the one double payment no client can avoid. Answers that failed before their end (a
stall, an error mid-stream, a drop mid-stream) are not counted: they are not billed.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class Completions:
    completed: int = 0
    completed_after_drop: int = 0

    def add(self, *, dropped: bool = False) -> None:
        if dropped:
            self.completed_after_drop += 1
        else:
            self.completed += 1

    def as_json(self) -> dict[str, int]:
        return {"completed": self.completed, "completed_after_drop": self.completed_after_drop}
