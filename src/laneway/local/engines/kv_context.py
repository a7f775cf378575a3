"""The llama.cpp context of the batch decoder, created on demand and freed when idle.

The context holds the KV cache of every slot (~23 KB per token: 750 MB for 16 slots of
2,048 tokens) and the compute buffers; the weights live in the model, not here. An idle
server needs none of it: the decoder creates the context when a request arrives and
frees it after ``idle_s`` seconds without one, so a loaded, idle engine holds the
weights only. Creating it again costs the next request ~1 s on 2 busy cores (llama.cpp
zeroes the whole cache): 185 MiB RSS idle instead of ~920 MiB, measured on
``laneway local``.
"""

from __future__ import annotations

import logging
from typing import Any

log = logging.getLogger(__name__)


class KVContext:
    """A llama.cpp context for ``slots`` sequences of ``slot_ctx`` tokens each, one KV
    stream per sequence. Only the decoder thread touches it."""

    def __init__(self, model: Any, *, slots: int, slot_ctx: int, n_batch: int,
                 n_threads: int) -> None:
        import llama_cpp

        self._ll: Any = llama_cpp
        self._model = model
        params = llama_cpp.llama_context_default_params()
        params.n_ctx = slots * slot_ctx
        params.n_batch = params.n_ubatch = n_batch
        params.n_seq_max = slots
        params.kv_unified = False  # one KV stream per sequence: see batch_decoder
        params.n_threads = params.n_threads_batch = n_threads
        params.flash_attn_type = llama_cpp.LLAMA_FLASH_ATTN_TYPE_DISABLED  # as Llama()
        params.no_perf = True
        self._params = params
        self.slot_ctx = slot_ctx
        self.ctx: Any = None
        self.mem: Any = None
        self.created = 0
        self.freed = 0

    @property
    def live(self) -> bool:
        return self.ctx is not None

    def ensure(self) -> None:
        """Create the context if it is not there."""
        if self.ctx is not None:
            return
        ctx = self._ll.llama_init_from_model(self._model, self._params)
        if not ctx:
            raise RuntimeError("llama.cpp could not create a context")
        per_seq = int(self._ll.llama_n_ctx_seq(ctx))
        if per_seq < self.slot_ctx:
            log.warning("llama.cpp gave %d tokens per slot, not %d", per_seq, self.slot_ctx)
            self.slot_ctx = per_seq
        self.ctx, self.mem = ctx, self._ll.llama_get_memory(ctx)
        self.created += 1

    def free(self) -> None:
        """Free the context (its KV cache and buffers) if it is there."""
        if self.ctx is None:
            return
        self._ll.llama_free(self.ctx)
        self.ctx = self.mem = None
        self.freed += 1
