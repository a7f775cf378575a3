"""The native runner: a run's jobs through the provider's Message Batches, at half price.

One loop (:mod:`.runner`), until every job is final (or the run is stopped, over
budget, or canceled):

- **submit** (:mod:`.submit`): claim pending jobs in input order and chunk them within
  the batch limits (requests, and bytes of the body actually sent, :mod:`.wire`), and
  within the budget: a chunk whose worst-case cost would pass ``--budget`` is not sent
  (its worst case is reserved in the ledger, where every process on the run reserves).
  Each submission is recorded *before* ``create`` (row ``submitting``, jobs
  ``submitted``) and the provider's id right after it (:mod:`laneway.store.batches`).
- **poll** (:mod:`.poll`) every batch this worker owns, with backoff (``poll_initial_s``
  growing by ``poll_factor`` to ``poll_max_s``; back to the start whenever something
  changes), reporting each batch's counts as they change.
- **collect** (:mod:`.collect`) an ended batch's results as they stream in, committing
  them in groups: a result is recorded once per job, with its cost at the batch price.
  ``errored`` results of a retryable type, and ``expired`` or ``canceled`` ones, go
  back to ``pending`` for the next chunk (within ``max_attempts``); request errors are
  final.
- **fall back** (:mod:`.fallback`): with a deadline, when the time left is no more than
  what realtime would need for the jobs not finished (plus a margin), the batches are
  canceled, their results read (what they finished is kept, and billed), and the rest
  is left ``pending``: the runner returns (``NativeTally.fallback``,
  ``left_for_realtime``) and its caller sends them realtime.

Stopping (Ctrl-C, ``stop_event``) or a crash leaves the batches running at the
provider; the same command later re-attaches to them (rows ``submitted``) and never
submits their jobs again. Rows left ``submitting`` are settled by :mod:`.recover`.
A canceled run's batches are :mod:`.cancel`'s (the cancel itself is
:mod:`laneway.runs.cancel`'s). Every call to the provider's Message Batches
goes through :mod:`laneway.provider.batches`; the parts share a :class:`.state.NativeState`
and never import the runner, nor the runner its callers.
"""

from __future__ import annotations

from laneway.runners.native.options import NativeOptions, NativeTally
from laneway.runners.native.runner import NativeRunner, run_native

__all__ = ["NativeOptions", "NativeRunner", "NativeTally", "run_native"]
