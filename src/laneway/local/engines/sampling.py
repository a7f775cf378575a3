"""Pick the next token from a row of logits: greedy, or temperature / top-k / top-p.

Pure numpy, so it runs the same whatever the batch: a sequence's choice depends only on
its own logits and its own random generator (seeded per request).
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from laneway.local.engines.base import SamplingParams

#: top-p first looks among this many most likely tokens (a partial sort), and sorts the
#: whole vocabulary only when their mass falls short of ``top_p``.
_NUCLEUS_PROBE = 256


def new_rng(params: SamplingParams) -> np.random.Generator | None:
    """The random generator a sequence samples with (``None`` when greedy)."""
    return None if is_greedy(params) else np.random.default_rng(params.seed)


def is_greedy(params: SamplingParams) -> bool:
    return params.temperature <= 0.0 or params.top_k == 1


def sample(
    logits: npt.NDArray[np.float32], params: SamplingParams, rng: np.random.Generator | None
) -> int:
    """The token to emit after ``logits`` (greedy: the argmax, ties to the lowest id)."""
    if rng is None or is_greedy(params):
        return int(np.argmax(logits))
    scaled = logits.astype(np.float64) / params.temperature
    ids: npt.NDArray[np.intp] | None = None
    if params.top_k is not None and 0 < params.top_k < scaled.size:
        ids = np.argpartition(scaled, -params.top_k)[-params.top_k:]
        scaled = scaled[ids]
    probs = np.exp(scaled - scaled.max())
    probs /= probs.sum()
    if params.top_p is not None and params.top_p < 1.0:
        keep = _nucleus(probs, params.top_p)
        probs = probs[keep] / probs[keep].sum()
        ids = keep if ids is None else ids[keep]
    cdf = np.cumsum(probs)
    pick = min(int(np.searchsorted(cdf, rng.random() * cdf[-1], side="right")), probs.size - 1)
    return int(pick if ids is None else ids[pick])


def _nucleus(probs: npt.NDArray[np.float64], top_p: float) -> npt.NDArray[np.intp]:
    """Indices of the smallest most-likely set of ``probs`` whose mass reaches ``top_p``."""
    if probs.size > _NUCLEUS_PROBE:
        head = np.argpartition(probs, -_NUCLEUS_PROBE)[-_NUCLEUS_PROBE:]
        if probs[head].sum() >= top_p:
            order = head[np.argsort(-probs[head], kind="stable")]
        else:
            order = np.argsort(-probs, kind="stable")
    else:
        order = np.argsort(-probs, kind="stable")
    cumulative = np.cumsum(probs[order])
    n = int(np.searchsorted(cumulative, top_p, side="left")) + 1
    return order[: min(n, order.size)]


def penalized(logits: npt.NDArray[np.float32], history: list[int],
              params: SamplingParams) -> npt.NDArray[np.float32]:
    """``logits`` with llama.cpp's repetition penalty applied to the tokens among the
    last ``repeat_last_n`` of ``history`` (each once, however often it occurred): a
    positive logit divided by ``repeat_penalty``, a negative one multiplied by it."""
    if params.repeat_penalty == 1.0 or not history or params.repeat_last_n <= 0:
        return logits
    ids = np.unique(np.asarray(history[-params.repeat_last_n:], dtype=np.intp))
    out = logits.copy()
    seen = out[ids]
    out[ids] = np.where(seen > 0, seen / params.repeat_penalty, seen * params.repeat_penalty)
    return out


def looping(history: list[int], params: SamplingParams) -> bool:
    """Whether the last ``loop_ngram`` tokens of ``history`` have now been generated
    ``loop_repeats`` times (the loop stop: a small model that repeats a phrase this
    often does not leave the loop)."""
    n = params.loop_ngram
    if n <= 0 or len(history) < n * params.loop_repeats:
        return False
    tokens = np.asarray(history, dtype=np.int64)
    windows = np.lib.stride_tricks.sliding_window_view(tokens, n)
    return int(np.all(windows == tokens[-n:], axis=1).sum()) >= params.loop_repeats
