"""Continuous batching: one llama.cpp context, one thread, many sequences.

A llama.cpp context is not thread-safe, so a single background thread owns it and runs
the decode loop for every active sequence. Each turn of the loop:

1. releases the sequences that ended or whose consumer went away (their KV cells are
   removed) and admits waiting ones while slots are free (a slot is a llama.cpp sequence
   id with its own KV stream);
2. *prefill*: a joining sequence first copies the longest prompt prefix another active
   sequence holds (a shared system prompt, typically), then its prompt goes through in
   chunks of up to ``n_batch`` tokens, each chunk its own ``llama_decode`` call, up to
   ``prefill_budget`` tokens per turn; a sequence whose prompt is complete samples its
   first token at once;
3. *step*: one ``llama_decode`` call feeds the last sampled token of every decoding
   sequence, then each one's next token is sampled from its own row of logits.

A request arriving mid-way thus joins at the next turn (a step lasts ~10-70 ms) instead
of waiting for the batch to drain. Tokens go to their consumer through ``emit`` (called
from this thread; the engine forwards them to an asyncio queue); ``emit(None)`` ends a
sequence, ``emit(exc)`` fails it.

Why prompts do not ride along in the step's batch: with one KV stream per sequence,
llama.cpp splits a batch into micro-batches holding the same number of tokens of each
sequence, so a 40-token prompt next to 1-token steps would be decoded apart anyway.

Determinism: the context keeps one KV stream per sequence (``kv_unified = False``), so a
sequence's cells sit at the same indices (0, 1, 2, ...) whatever else runs, and every
per-token computation (matmuls, norms, attention over its own cells) is row-wise: greedy
output is bit-identical alone and inside any batch, whatever the micro-batch size. With
a unified KV cache, cells of different sequences interleave, attention sums over the
cells in another order, and greedy outputs of 8 prompts run together diverged from their
solo runs in 6 of 8 cases, after 5 to 60 tokens.
"""

from __future__ import annotations

import collections
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from laneway.local.engines.base import SamplingParams
from laneway.local.engines.grammar import Grammars
from laneway.local.engines.kv_context import KVContext
from laneway.local.engines.sampling import looping, new_rng, penalized, sample

log = logging.getLogger(__name__)

#: What a sequence's consumer receives: a token id, ``None`` at the end, or an error.
Emit = Callable[[int | BaseException | None], None]


#: Reuse another sequence's prompt prefix (copying its KV stream) from this many tokens.
MIN_SHARED_PREFIX = 8


class EngineClosedError(RuntimeError):
    """The engine was closed while a sequence was waiting or generating."""


class ContextWindowExceeded(Exception):
    """Sent (not raised) to end a sequence whose slot filled before its answer ended."""


@dataclass(eq=False)
class Sequence:
    """One generation: its prompt tokens, how to sample, and where it stands."""

    prompt: list[int]
    params: SamplingParams
    emit: Emit
    rng: np.random.Generator | None = None
    slot: int = -1
    #: Tokens of this sequence in the KV cache (its next position).
    n_past: int = 0
    generated: int = 0
    #: The last sampled token, to feed at the next step.
    pending: int | None = None
    cancelled: bool = False
    done: bool = False
    #: The GBNF the output must follow, and its llama.cpp sampler while the sequence runs.
    grammar_text: str | None = None
    grammar: Any = None
    #: The tokens generated so far (the repetition penalty and the loop stop read them).
    history: list[int] = field(default_factory=list)


class BatchDecoder:
    """Owns a llama.cpp context and the thread that decodes all sequences in it.

    ``model`` and ``vocab`` are llama.cpp pointers (``llama_model *``, ``llama_vocab *``)
    that must outlive the decoder. ``slots`` sequences run at once, each with a KV
    stream of ``slot_ctx`` cells (prompt + output); more requests wait for a free slot.
    The context (the KV cache) exists while there is work, and ``idle_s`` seconds more.
    """

    def __init__(
        self, model: Any, vocab: Any, *, slots: int = 16, slot_ctx: int = 2048,
        n_batch: int = 512, n_threads: int = 2, prefill_budget: int = 256,
        idle_s: float = 120.0,
    ) -> None:
        import llama_cpp

        self._ll: Any = llama_cpp
        self._vocab = vocab
        self._kv = KVContext(model, slots=slots, slot_ctx=slot_ctx, n_batch=n_batch,
                             n_threads=n_threads)
        self.idle_s = idle_s
        self.slots = slots
        self.slot_ctx = slot_ctx
        self.n_batch = n_batch
        self.prefill_budget = prefill_budget
        self._n_vocab = int(llama_cpp.llama_vocab_n_tokens(vocab))
        self.grammars = Grammars(vocab, self._n_vocab)
        self._batch: Any = llama_cpp.llama_batch_init(max(n_batch, slots), 0, 1)
        self._cond = threading.Condition()
        self._waiting: collections.deque[Sequence] = collections.deque()
        self._free = list(range(slots - 1, -1, -1))
        self._active: list[Sequence] = []
        self._stopping = False
        self._closed = False
        #: Decode calls and tokens decoded, for tests and benchmarks.
        self.stats = {"decode_calls": 0, "prefill_tokens": 0, "prefix_tokens_reused": 0,
                      "step_tokens": 0, "max_batch": 0}
        self._thread = threading.Thread(target=self._run, name="laneway-smollm2-decoder",
                                         daemon=True)
        self._thread.start()

    # -- the consumers' side (any thread) ------------------------------------------------
    def submit(self, prompt: list[int], params: SamplingParams, emit: Emit, *,
               grammar: str | None = None) -> Sequence:
        """Queue a sequence; it joins the running batch at the next turn of the loop.
        With ``grammar`` (GBNF), its tokens are held to that grammar."""
        if not prompt:
            raise ValueError("a sequence needs at least one prompt token")
        seq = Sequence(prompt=list(prompt), params=params, emit=emit, rng=new_rng(params),
                       grammar_text=grammar)
        with self._cond:
            if self._stopping:
                raise EngineClosedError("the SmolLM2 engine is closed")
            self._waiting.append(seq)
            self._cond.notify()
        return seq

    def cancel(self, seq: Sequence) -> None:
        """Stop ``seq`` (if still running): it leaves the batch and its KV cells are freed."""
        with self._cond:
            if not seq.done:
                seq.cancelled = True
                self._cond.notify()

    def active_count(self) -> int:
        with self._cond:
            return len(self._active) + len(self._waiting)

    def close(self) -> None:
        """Stop the thread (failing what is left with :class:`EngineClosedError`), free the
        context. Blocks until the current decode call ends."""
        with self._cond:
            if self._closed:
                return
            self._stopping = True
            self._cond.notify()
        self._thread.join()
        with self._cond:
            self._closed = True
        self._ll.llama_batch_free(self._batch)
        self._kv.free()

    # -- the decoder thread --------------------------------------------------------------
    def _run(self) -> None:
        error: BaseException = EngineClosedError("the SmolLM2 engine was closed")
        try:
            while True:
                with self._cond:
                    self._wait_for_work()
                    if self._stopping:
                        break
                self._kv.ensure()  # outside the lock: submit() must not wait for it
                with self._cond:
                    self._schedule()
                    work = list(self._active)
                self._prefill([s for s in work if s.n_past < len(s.prompt) and not s.done])
                self._step([s for s in work if s.pending is not None and not s.done])
        except BaseException as exc:  # a bug or a fatal llama.cpp error: fail everyone
            log.exception("the SmolLM2 decode loop failed")
            error = exc
        with self._cond:
            self._stopping = True
            left = [*self._active, *self._waiting]
            self._waiting.clear()
        for seq in left:
            self._release_grammar(seq)
            if not seq.done:
                seq.done = True
                self._send(seq, error)

    def _wait_for_work(self) -> None:
        """Under the lock: wait until there is work or the decoder stops; free the
        context after ``idle_s`` without work."""
        idle_since = time.monotonic()
        while not self._stopping and not self._waiting and not self._active:
            if not self._kv.live:
                self._cond.wait()
                continue
            left = idle_since + self.idle_s - time.monotonic()
            if left <= 0:
                self._kv.free()
                log.info("SmolLM2 context freed after %.0f s idle", self.idle_s)
            else:
                self._cond.wait(left)

    @property
    def context_live(self) -> bool:
        """Whether the context (the KV cache) is allocated now."""
        return self._kv.live

    def _release_grammar(self, seq: Sequence) -> None:
        if seq.grammar is not None:
            self.grammars.free(seq.grammar)
            seq.grammar = None

    def _schedule(self) -> None:
        """Under the lock: release finished and cancelled sequences, admit waiting ones."""
        for seq in [s for s in self._active if s.done or s.cancelled]:
            self._ll.llama_memory_seq_rm(self._kv.mem, seq.slot, -1, -1)
            self._active.remove(seq)
            self._free.append(seq.slot)
            self._release_grammar(seq)
            seq.done = True
        while self._waiting and self._free:
            seq = self._waiting.popleft()
            if seq.cancelled:
                seq.done = True
                continue
            if seq.grammar_text is not None:
                try:
                    seq.grammar = self.grammars.new(seq.grammar_text)
                except ValueError as exc:
                    seq.done = True
                    self._send(seq, exc)
                    continue
            seq.slot = self._free.pop()
            self._active.append(seq)
        if any(s.cancelled for s in self._waiting):
            self._waiting = collections.deque(s for s in self._waiting if not s.cancelled)

    def _prefill(self, joining: list[Sequence]) -> None:
        """Prompt chunks of joining sequences, one decode call each, after reusing the
        longest prompt prefix another sequence already holds."""
        budget = self.prefill_budget
        for seq in joining:
            if budget <= 0:
                break
            if seq.n_past == 0 and len(seq.prompt) < self.slot_ctx and not seq.cancelled:
                self._share_prefix(seq)  # llama.cpp copies the cells at the next decode
            while budget > 0 and seq.n_past < len(seq.prompt) and not seq.cancelled:
                if len(seq.prompt) >= self.slot_ctx:  # no room left for an answer
                    log.warning("a prompt of %d tokens does not fit a %d-token slot",
                                len(seq.prompt), self.slot_ctx)
                    self._finish(seq, ContextWindowExceeded())
                    break
                start = seq.n_past
                end = min(len(seq.prompt), start + self.n_batch)
                batch = self._batch
                for i, pos in enumerate(range(start, end)):
                    self._put(i, seq.prompt[pos], pos, seq.slot, pos == len(seq.prompt) - 1)
                batch.n_tokens = end - start
                if not self._decode([seq]):
                    break
                self.stats["prefill_tokens"] += end - start
                seq.n_past = end
                budget -= end - start
                if end == len(seq.prompt):
                    self._sampled(seq, end - start - 1)

    def _share_prefix(self, seq: Sequence) -> None:
        """Start ``seq`` from the KV cells of the active sequence whose processed prompt
        shares the longest prefix with it (a system prompt, say), when that saves at least
        ``MIN_SHARED_PREFIX`` tokens of prefill. The cells are copied (llama.cpp copies the
        donor's whole KV stream, then the cells past the prefix are dropped), so they are
        bit for bit the cells ``seq`` would have computed: K and V at a position depend on
        the tokens up to it only, and are computed row by row."""
        best, donor = 0, None
        for other in self._active:
            if other is seq or other.done or other.cancelled or other.slot < 0:
                continue
            held = other.prompt[: min(other.n_past, len(other.prompt))]
            n = _common_prefix(held, seq.prompt[: len(seq.prompt) - 1])
            if n > best:
                best, donor = n, other
        if donor is None or best < MIN_SHARED_PREFIX:
            return
        self._ll.llama_memory_seq_cp(self._kv.mem, donor.slot, seq.slot, -1, -1)
        if not self._ll.llama_memory_seq_rm(self._kv.mem, seq.slot, best, -1):
            self._ll.llama_memory_seq_rm(self._kv.mem, seq.slot, -1, -1)
            return
        seq.n_past = best
        self.stats["prefix_tokens_reused"] += best

    def _step(self, decoding: list[Sequence]) -> None:
        """Feed one token per decoding sequence, all in one decode call, and sample."""
        ready = [s for s in decoding if not s.cancelled]
        if not ready:
            return
        for i, seq in enumerate(ready):
            assert seq.pending is not None
            self._put(i, seq.pending, seq.n_past, seq.slot, True)
        self._batch.n_tokens = len(ready)
        if not self._decode(ready):
            return
        self.stats["step_tokens"] += len(ready)
        self.stats["max_batch"] = max(self.stats["max_batch"], len(ready))
        for i, seq in enumerate(ready):
            seq.n_past += 1
            seq.pending = None
            self._sampled(seq, i)

    def _put(self, i: int, token: int, pos: int, slot: int, logits: bool) -> None:
        batch = self._batch
        batch.token[i] = token
        batch.pos[i] = pos
        batch.n_seq_id[i] = 1
        batch.seq_id[i][0] = slot
        batch.logits[i] = logits

    def _decode(self, seqs: list[Sequence]) -> bool:
        """Run the batch; on failure, fail ``seqs`` (their cells are removed later)."""
        self.stats["decode_calls"] += 1
        rc = int(self._ll.llama_decode(self._kv.ctx, self._batch))
        if rc == 0:
            return True
        error = RuntimeError(f"llama_decode failed (code {rc})")
        log.error("%s for %d sequence(s)", error, len(seqs))
        for seq in seqs:
            seq.done = True
            seq.pending = None
            self._send(seq, error)
        return False

    def _sampled(self, seq: Sequence, row: int) -> None:
        """Sample ``seq``'s next token from logits row ``row``; emit it or end the sequence."""
        ptr = self._ll.llama_get_logits_ith(self._kv.ctx, row)
        logits = np.ctypeslib.as_array(ptr, shape=(self._n_vocab,))
        if seq.grammar is None:
            logits = penalized(logits, seq.history, seq.params)
        token = sample(logits, seq.params, seq.rng)
        if seq.grammar is not None:
            token = self.grammars.pick(
                seq.grammar, logits, token, lambda allowed: sample(allowed, seq.params, seq.rng))
            if token < 0:  # the grammar allows nothing: stop
                self._finish(seq)
                return
        if self._ll.llama_vocab_is_eog(self._vocab, token):
            self._finish(seq)
            return
        seq.generated += 1
        seq.history.append(token)
        self._send(seq, token)
        if seq.generated >= seq.params.max_tokens or looping(seq.history, seq.params):
            self._finish(seq)
        elif seq.n_past + 1 >= self.slot_ctx:  # prompt + answer fill the slot: end there
            self._finish(seq, ContextWindowExceeded())
        else:
            seq.pending = token

    def _finish(self, seq: Sequence, end: ContextWindowExceeded | None = None) -> None:
        seq.done = True
        seq.pending = None
        self._send(seq, end)

    @staticmethod
    def _send(seq: Sequence, item: int | BaseException | None) -> None:
        try:
            seq.emit(item)
        except RuntimeError:  # the consumer's event loop is gone
            seq.cancelled = True


def _common_prefix(a: list[int], b: list[int]) -> int:
    n = 0
    for x, y in zip(a, b, strict=False):
        if x != y:
            break
        n += 1
    return n
