"""What an engine of the local API does: count tokens, and generate tokens one by one."""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from typing import Any, Protocol


@dataclass(frozen=True, slots=True)
class Prompt:
    """A conversation reduced to text: the system prompt and (role, text) turns.

    A turn's role is ``user``, ``assistant`` or ``system`` (a system-role message, as
    SDK 2.x sends one mid-conversation: system text at that point of the conversation).
    A final ``assistant`` turn is a prefill: generation continues it.
    """

    system: str
    turns: tuple[tuple[str, str], ...]

    @property
    def prefill(self) -> str:
        if self.turns and self.turns[-1][0] == "assistant":
            return self.turns[-1][1]
        return ""

    @property
    def last_user_text(self) -> str:
        for role, text in reversed(self.turns):
            if role == "user":
                return text
        return ""


@dataclass(frozen=True, slots=True)
class SamplingParams:
    """How to pick tokens. ``temperature == 0`` means greedy and deterministic."""

    max_tokens: int
    temperature: float = 1.0
    top_p: float | None = None
    top_k: int | None = None
    seed: int = 0
    #: When set, a JSON schema (as canonical JSON text) the output must be valid against:
    #: the engine constrains its decoding to it (structured outputs, forced tool calls).
    json_schema: str | None = None
    #: llama.cpp's ``repeat_penalty`` over the last ``repeat_last_n`` generated tokens (a
    #: positive logit divided by it, a negative one multiplied by it); 1.0 is off.
    repeat_penalty: float = 1.0
    repeat_last_n: int = 64
    #: The loop stop: the answer ends (``end_turn``) once its last ``loop_ngram`` tokens
    #: have been generated ``loop_repeats`` times; 0 is off.
    loop_ngram: int = 0
    loop_repeats: int = 4


class UnsupportedSchemaError(ValueError):
    """An engine cannot constrain its output to this JSON schema (the API answers 400)."""


class ContextWindowFull(str):
    """The last item an engine yields when the context filled before the answer ended.

    It is no token (empty text, not counted): the answer stops with ``stop_reason:
    "model_context_window_exceeded"``.
    """


#: The one instance engines yield.
CONTEXT_WINDOW_FULL = ContextWindowFull("")


def limits(context_window: int) -> dict[str, Any]:
    """``max_input_tokens`` and ``max_tokens`` of a model entry for a context of
    ``context_window`` tokens shared by prompt and answer (each leaves the other one)."""
    return {"max_input_tokens": context_window - 1, "max_tokens": context_window - 1}


def sampling_note(defaults: Mapping[str, float]) -> str:
    """How a display name states sampling defaults: ``temperature 0.2, top_p 0.9 when a
    request sets none``."""
    if not defaults:
        return ""
    return ", ".join(f"{k} {v:g}" for k, v in defaults.items()) + " when a request sets none"


class Engine(Protocol):
    """A text generator behind the local API.

    ``generate`` yields the text of one token at a time, as soon as it is decoded, and
    ends when the model ends its turn. It may be closed early (``aclose``): at
    ``max_tokens``, at a stop sequence, or when the client goes away; an engine must then
    free what the sequence held.

    ``describe()`` gives the facts about the engine merged into its ``GET /v1/models``
    entries (``display_name``, ``max_input_tokens``, ``max_tokens``, ``capabilities``
    such as ``{"structured_outputs": {"supported": True}}``); the request validation
    refuses what the capabilities say it cannot do. See :mod:`laneway.local.models`.
    """

    name: str
    #: The model id its answers carry (``smollm2-135m-instruct``): a model engine names
    #: itself, whatever model was asked for. ``None``: the model asked for (the echo
    #: engine simulates the API, answering as that model).
    model_id: str | None

    @property
    def sampling_defaults(self) -> Mapping[str, float]:
        """Sampling used when a request sets none of temperature / top_p / top_k (the
        model's own recommendation; empty: the API's default, temperature 1.0)."""
        ...

    @property
    def context_window(self) -> int:
        """Tokens of prompt plus answer one request may hold."""
        ...

    def describe(self) -> Mapping[str, Any]:
        """Its ``GET /v1/models`` facts: limits, capabilities, and a display name that
        states its sampling defaults (see :func:`limits`)."""
        ...

    def check_schema(self, schema: str) -> None:
        """Raise :class:`UnsupportedSchemaError` if outputs cannot be held to ``schema``."""
        ...

    def count_tokens(self, prompt: Prompt) -> int: ...

    def generate(self, prompt: Prompt, params: SamplingParams) -> AsyncIterator[str]: ...

    async def aclose(self) -> None: ...
