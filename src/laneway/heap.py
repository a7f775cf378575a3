"""Keep the garbage collector's full passes short in laneway's long-running processes.

A laneway process holds what it imported for as long as it lives: the anthropic SDK
(thousands of type classes), FastAPI, pydantic and SQLAlchemy, some 200,000 objects.
CPython's full (generation 2) collection walks all of them, 280-500 ms on the 2-core
machines here, and the event loop stands still meanwhile: every stream being relayed
stalls and a person's first token waits (``bench/sse.py`` saw one such stall in about
150 streams, at any load). Moving the objects alive once a command has started into
the permanent generation (:func:`gc.freeze`) leaves the full passes only what was
made since. The commands call :func:`freeze_startup_objects`; a library user's heap is
theirs to manage.

The collections that run *during* those imports are as useless: every object made is
kept, and each pass walks a heap that grows to all of them. ``laneway run`` imports
under :func:`no_collection`: ~0.2 s of CPU less at its start (of ~1.4 s).
"""

from __future__ import annotations

import contextlib
import gc
from collections.abc import Iterator


def freeze_startup_objects() -> None:
    """Exempt every object alive now from later collections (it lives as long as the
    process anyway). No collection first: it would cost ~180 ms of start-up and, measured
    after laneway's imports, frees nothing (the automatic passes already did)."""
    gc.freeze()


@contextlib.contextmanager
def no_collection() -> Iterator[None]:
    """No automatic collection inside the block (imports: what they make stays alive)."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()
