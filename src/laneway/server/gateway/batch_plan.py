"""How the gateway fulfils a Message Batch: the upstream's batches, realtime, or both.

By default a batch goes to the upstream's own Message Batches (``native``): the client
asked for a batch, so it pays the batch price it expected. Two request headers let the
client hand the choice to laneway's planner (:mod:`laneway.runners.planner`):

- ``laneway-deadline: 2h`` (``90s``, ``30m``, ``1d``): the batch must end by then; the
  planner picks batches when they make it, ``hybrid`` when batches may not all end in
  time (what is unfinished near the deadline is sent realtime), or ``realtime``;
- ``laneway-mode: auto``: the planner, with no deadline (realtime when the batch is
  small enough that a batch would save next to nothing); ``native`` or ``realtime``
  choose outright.

A batch run realtime costs what realtime costs: the choice and its reason are kept with
the batch in the ledger (and the run's ``mode`` says it) and sent back in the create
answer's ``laneway-mode`` header.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from laneway.runners.planner import Workload, choose
from laneway.timeparse import duration_s

MODE_HEADER = "laneway-mode"
DEADLINE_HEADER = "laneway-deadline"
_MODES = ("auto", "native", "realtime")
_DEFAULT = ("native: a Message Batch goes to the upstream's Message Batches, at the "
            "batch price")


class BadPlanHeader(ValueError):
    """A ``laneway-mode`` or ``laneway-deadline`` header laneway cannot read."""


@dataclass(frozen=True, slots=True)
class BatchPlan:
    #: ``native``, ``realtime`` or ``hybrid``.
    mode: str
    reason: str
    deadline_at: float | None = None


def _asked(headers: Mapping[str, str]) -> tuple[str | None, float | None]:
    mode = headers.get(MODE_HEADER)
    if mode is not None:
        mode = mode.strip().lower()
        if mode not in _MODES:
            raise BadPlanHeader(f"{MODE_HEADER}: {mode!r} is not a mode; use "
                                f"{', '.join(_MODES)}")
    text = headers.get(DEADLINE_HEADER)
    deadline_s = None
    if text is not None:
        deadline_s = duration_s(text)
        if deadline_s is None or deadline_s <= 0:
            raise BadPlanHeader(f"{DEADLINE_HEADER}: {text.strip()!r} is not a duration "
                                "(90s, 30m, 2h, 1d)")
    return mode, deadline_s


def plan_batch(headers: Mapping[str, str], params: list[dict[str, Any]], *, local: bool,
               learnt_s: list[float] | None = None) -> BatchPlan:
    """The plan for a batch of ``params`` (the requests laneway will send)."""
    mode, deadline_s = _asked(headers)
    deadline_at = None if deadline_s is None else time.time() + deadline_s
    if mode in ("native", "realtime"):
        return BatchPlan(mode, f"{mode}: asked for ({MODE_HEADER})", deadline_at)
    if mode is None and deadline_s is None:
        return BatchPlan("native", _DEFAULT)
    workload = Workload.of(params, expected_output_tokens=400)
    plan = choose(workload, local=local, deadline_s=deadline_s, learnt_s=learnt_s)
    return BatchPlan(plan.mode, plan.reason, deadline_at)
