"""The startup heap is exempted from full collections (see laneway.heap)."""

from __future__ import annotations

import gc
from collections.abc import Iterator

import anthropic  # noqa: F401  (the bulk of a laneway process's long-lived objects)
import pytest

from laneway.heap import freeze_startup_objects, no_collection


@pytest.fixture
def unfrozen() -> Iterator[None]:
    gc.unfreeze()
    yield
    gc.unfreeze()


def test_full_collections_skip_what_startup_made(unfrozen: None) -> None:
    gc.collect()
    before = len(gc.get_objects(generation=2))
    assert before > 50_000  # the SDK alone is this big: the test measures something

    freeze_startup_objects()

    assert gc.get_freeze_count() >= before * 0.9
    assert len(gc.get_objects(generation=2)) < before // 20


def test_no_collection_inside_the_block_and_as_before_after() -> None:
    assert gc.isenabled()
    passes = sum(g["collections"] for g in gc.get_stats())
    with no_collection():
        made = [[i] for i in range(100_000)]  # enough to start many young passes
        assert sum(g["collections"] for g in gc.get_stats()) == passes
    assert gc.isenabled() and len(made) == 100_000
    gc.disable()
    try:
        with no_collection():
            pass
        assert not gc.isenabled()  # left as it was found
    finally:
        gc.enable()
