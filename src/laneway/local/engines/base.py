"""What an engine of the local API does: count tokens, and generate tokens one by one."""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from typing import Protocol


@dataclass(frozen=True, slots=True)
class Prompt:
    """A conversation reduced to text: the system prompt and (role, text) turns.

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


class UnsupportedSchemaError(ValueError):
    """An engine cannot constrain its output to this JSON schema (the API answers 400)."""


class ContextWindowFull(str):
    """The last item an engine yields when the context filled before the answer ended.

    It is no token (empty text, not counted): the answer stops with ``stop_reason:
    "model_context_window_exceeded"``.
    """


#: The one instance engines yield.
CONTEXT_WINDOW_FULL = ContextWindowFull("")


class Engine(Protocol):
    """A text generator behind the local API.

    ``generate`` yields the text of one token at a time, as soon as it is decoded, and
    ends when the model ends its turn. It may be closed early (``aclose``): at
    ``max_tokens``, at a stop sequence, or when the client goes away; an engine must then
    free what the sequence held.
    """

    name: str

    @property
    def sampling_defaults(self) -> Mapping[str, float]:
        """Sampling used when a request sets none of temperature / top_p / top_k (the
        model's own recommendation; empty: the API's default, temperature 1.0)."""
        ...

    @property
    def context_window(self) -> int:
        """Tokens of prompt plus answer one request may hold."""
        ...

    def describe(self) -> str:
        """One line for people: the model, its context, its sampling defaults."""
        ...

    def check_schema(self, schema: str) -> None:
        """Raise :class:`UnsupportedSchemaError` if outputs cannot be held to ``schema``."""
        ...

    def count_tokens(self, prompt: Prompt) -> int: ...

    def generate(self, prompt: Prompt, params: SamplingParams) -> AsyncIterator[str]: ...

    async def aclose(self) -> None: ...
