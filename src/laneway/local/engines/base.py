"""What an engine of the local API does: count tokens, and generate tokens one by one."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Protocol


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


class Engine(Protocol):
    """A text generator behind the local API.

    ``generate`` yields the text of one token at a time, as soon as it is decoded, and
    ends when the model ends its turn. It may be closed early (``aclose``): at
    ``max_tokens``, at a stop sequence, or when the client goes away; an engine must then
    free what the sequence held.

    An engine may also have ``describe() -> dict``: facts about itself merged into its
    ``GET /v1/models`` entries (``display_name``, ``max_input_tokens``, ``max_tokens``,
    ``capabilities`` such as ``{"structured_outputs": {"supported": True}}``); the
    request validation refuses what the capabilities say it cannot do. See
    :mod:`laneway.local.models`.
    """

    name: str

    def count_tokens(self, prompt: Prompt) -> int: ...

    def generate(self, prompt: Prompt, params: SamplingParams) -> AsyncIterator[str]: ...

    async def aclose(self) -> None: ...
