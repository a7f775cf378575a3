"""JSON-schema constrained decoding with llama.cpp grammars, one grammar per sequence.

A schema becomes a GBNF grammar through the converter llama-cpp-python ships
(``llama_cpp.llama_grammar.json_schema_to_gbnf``, a port of llama.cpp's
``json-schema-to-grammar``); each constrained sequence of the batch gets its own
llama.cpp grammar sampler (its parse state), created when it joins and freed when it
leaves.

Picking a token: the token the sampler would pick unconstrained is tried first (one
candidate through the grammar, cheap); only when the grammar rejects it is the whole
row of logits masked (every token through the grammar, a few milliseconds) and the
token drawn again from what is allowed. The chosen token is then accepted, advancing
the grammar. A complete grammar allows only end-of-generation, so the answer ends
with the JSON.
"""

from __future__ import annotations

import ctypes
import functools
import json
import time
from collections.abc import Callable
from typing import Any

import numpy as np
import numpy.typing as npt

from laneway.local.engines.base import UnsupportedSchemaError

#: The layout of llama.cpp's ``llama_token_data`` (id, logit, p).
_TOKEN_DATA = np.dtype([("id", "<i4"), ("logit", "<f4"), ("p", "<f4")])

#: Bounds the grammar adds where a schema sets none: a 135M model, free to, repeats an
#: array item or a phrase until ``max_tokens`` and never closes the JSON. Any instance
#: of the bounded schema is valid against the schema as given.
MAX_ITEMS = 10
MAX_STRING = 160


def bounded(node: Any) -> Any:
    """A copy of a schema with ``maxItems`` on unbounded arrays and ``maxLength`` on
    free strings (no enum, const, pattern or format)."""
    if isinstance(node, list):
        return [bounded(item) for item in node]
    if not isinstance(node, dict):
        return node
    out = {key: bounded(value) for key, value in node.items()}
    kind = out.get("type")
    kinds: list[Any] = kind if isinstance(kind, list) else [kind]
    if ("array" in kinds or "items" in out) and "maxItems" not in out:
        out["maxItems"] = max(MAX_ITEMS, int(out.get("minItems", 0)))
    free = not any(key in out for key in ("enum", "const", "pattern", "format"))
    if "string" in kinds and free and "maxLength" not in out:
        out["maxLength"] = max(MAX_STRING, int(out.get("minLength", 0)))
    return out


@functools.lru_cache(maxsize=128)
def gbnf(schema: str) -> str:
    """The grammar of JSON valid against ``schema`` (JSON text)."""
    from llama_cpp.llama_grammar import json_schema_to_gbnf

    try:
        parsed = json.loads(schema)
    except ValueError as exc:
        raise UnsupportedSchemaError(f"not JSON: {exc}") from None
    if not isinstance(parsed, dict):
        raise UnsupportedSchemaError("a schema must be an object")
    try:
        return str(json_schema_to_gbnf(json.dumps(bounded(parsed))))
    except RecursionError:
        raise UnsupportedSchemaError("the schema nests too deeply") from None
    except Exception as exc:  # the converter raises whatever it meets
        raise UnsupportedSchemaError(f"{type(exc).__name__}: {exc}") from None


class Grammars:
    """Grammar samplers over one vocabulary, and the two ways of applying them."""

    def __init__(self, vocab: Any, n_vocab: int) -> None:
        import llama_cpp

        self._ll: Any = llama_cpp
        self._vocab = vocab
        self._rows = np.zeros(n_vocab, dtype=_TOKEN_DATA)
        self._rows["id"] = np.arange(n_vocab, dtype=np.int32)
        self._one = (llama_cpp.llama_token_data * 1)()
        self._checked: set[str] = set()
        #: Tokens picked under a grammar, full-vocabulary masks, microseconds spent.
        self.stats = {"tokens": 0, "masks": 0, "us": 0}

    def new(self, grammar: str) -> Any:
        """A fresh sampler for ``grammar`` (``UnsupportedSchemaError`` if llama.cpp
        cannot parse it). Free it with :meth:`free`."""
        sampler = self._ll.llama_sampler_init_grammar(self._vocab, grammar.encode(), b"root")
        if not sampler:
            raise UnsupportedSchemaError("llama.cpp could not parse the schema's grammar")
        return sampler

    def check(self, schema: str) -> str:
        """The schema's grammar, once llama.cpp has parsed it."""
        text = gbnf(schema)
        if text not in self._checked:
            self.free(self.new(text))
            self._checked.add(text)
        return text

    def free(self, sampler: Any) -> None:
        self._ll.llama_sampler_free(sampler)

    def _apply(self, sampler: Any, data: Any, size: int) -> None:
        ll = self._ll
        array = ll.llama_token_data_array(
            data=ctypes.cast(data, ll.llama_token_data_p), size=size, selected=-1,
            sorted=False)
        ll.llama_sampler_apply(sampler, ctypes.byref(array))

    def allows(self, sampler: Any, token: int) -> bool:
        one: Any = self._one
        one[0].id, one[0].logit, one[0].p = token, 0.0, 0.0
        self._apply(sampler, one, 1)
        return bool(np.isfinite(one[0].logit))

    def masked(self, sampler: Any, logits: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]:
        """``logits`` with every token the grammar rejects at ``-inf``."""
        rows = self._rows
        rows["logit"] = logits
        self._apply(sampler, rows.ctypes.data, rows.size)
        return np.array(rows["logit"], dtype=np.float32)

    def pick(self, sampler: Any, logits: npt.NDArray[np.float32], token: int,
             resample: Callable[[npt.NDArray[np.float32]], int]) -> int:
        """The token to emit under ``sampler``'s grammar: ``token`` (the unconstrained
        pick) if the grammar allows it, else ``resample`` of the allowed logits; accepted
        by the grammar (unless it ends generation). -1 if the grammar allows nothing."""
        started = time.perf_counter()
        if not self.allows(sampler, token):
            allowed = self.masked(sampler, logits)
            self.stats["masks"] += 1
            token = resample(allowed) if np.isfinite(allowed).any() else -1
        if token >= 0 and not self._ll.llama_vocab_is_eog(self._vocab, token):
            self._ll.llama_sampler_accept(sampler, token)
        self.stats["tokens"] += 1
        self.stats["us"] += int((time.perf_counter() - started) * 1e6)
        return token
