"""The embedded engine's repetition penalty and loop stop (issue 25, goal 5), as the
decoder applies them to each sequence's own generated tokens (pure numpy: no model)."""

from __future__ import annotations

import numpy as np

from laneway.local.engines.base import SamplingParams
from laneway.local.engines.sampling import looping, penalized, sample

PARAMS = SamplingParams(max_tokens=100, temperature=0.0, repeat_penalty=1.5, repeat_last_n=3,
                        loop_ngram=3, loop_repeats=3)


def test_the_penalty_lowers_recent_tokens_only() -> None:
    logits = np.array([2.0, -1.0, 1.5, 0.5, 3.0], dtype=np.float32)
    out = penalized(logits, [0, 4, 1, 1], PARAMS)  # the last 3: 4, 1 (each once)
    assert out.tolist() == [2.0, -1.5, 1.5, 0.5, 2.0]
    assert logits.tolist() == [2.0, -1.0, 1.5, 0.5, 3.0]  # the row itself is untouched
    assert sample(out, PARAMS, None) == 0  # 4 led before the penalty, 0 leads after it
    off = SamplingParams(max_tokens=100)
    assert penalized(logits, [4], off) is logits  # 1.0: off


def test_the_loop_stop_fires_at_the_nth_repeat() -> None:
    phrase = [7, 8, 9]
    assert not looping([1, 2, *phrase, *phrase], PARAMS)  # twice: not yet
    assert looping([1, 2, *phrase, 5, *phrase, *phrase], PARAMS)  # a third time: stop
    assert not looping([*phrase, *phrase, *phrase], SamplingParams(max_tokens=10))  # off
    assert not looping(list(range(30)), PARAMS)
