"""``--price`` is the run's own: two runs of one process (as in ``laneway serve``), each
with its price, are each priced at theirs, and a later run given none has none."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest

from laneway.cost.budget import parse_price
from laneway.jobs.formats import JobDefaults
from laneway.local import RunningLocal
from laneway.provider.client import Provider
from laneway.runners.native import NativeOptions
from laneway.runs.library import run

UNPRICED = "claude-imaginary-9"  # no price in the table: only the one a run is given
DEFAULTS = JobDefaults(model=UNPRICED, max_tokens=50)


def make_input(path: Path, n: int) -> Path:
    path.write_text("".join(json.dumps({"id": f"doc-{i}", "prompt": f"text number {i}"})
                            + "\n" for i in range(n)))
    return path


async def test_two_runs_in_one_process_each_have_their_own_price(
        tmp_path: Path, local_api: RunningLocal) -> None:
    inp = make_input(tmp_path / "in.jsonl", 8)
    provider = Provider.at(local_api.base_url)
    fast = NativeOptions(poll_initial_s=0.05, poll_max_s=0.3, recover_after_s=0.0)
    try:
        # At once, in one process: realtime at $1/$1, batches at $100/$100 (half price).
        cheap, dear = await asyncio.gather(
            run(inp, db=tmp_path / "a.db", provider=provider, mode="realtime",
                defaults=DEFAULTS, price=parse_price("1/1")),
            run(inp, db=tmp_path / "b.db", provider=provider, mode="native",
                defaults=DEFAULTS, price=parse_price("100/100"), native=fast))
        # Later, with no price: its model has none (the others' prices were theirs only).
        bare = await run(inp, db=tmp_path / "c.db", provider=provider, mode="realtime",
                         defaults=DEFAULTS)
    finally:
        await provider.aclose()
    assert cheap.succeeded == dear.succeeded == bare.succeeded == 8
    tokens = cheap.input_tokens + cheap.output_tokens
    assert tokens > 0 and dear.input_tokens + dear.output_tokens == tokens
    assert cheap.cost_usd == pytest.approx(tokens * 1 / 1e6)
    assert dear.cost_usd == pytest.approx(tokens * 100 / 1e6 * 0.5)
    assert cheap.unpriced_models == dear.unpriced_models == []
    assert bare.unpriced_models == [UNPRICED] and bare.cost_usd == 0.0
