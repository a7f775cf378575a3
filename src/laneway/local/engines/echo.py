"""The echo engine: deterministic text derived from the prompt, with simulated latency.

It answers with the words of the last user turn (continuing after a prefill when the
prefill is a prefix of them), so a test knows the text, and the output length, it will
get. Offered tools under ``tool_choice: auto``, it calls the first one whose name shares a
word of four letters or more with that turn (with a minimal input valid against its
schema), except in answer to tool results: so a tool loop (the SDK's tool runner) runs a
call, then ends in text.
``ttft_ms`` is the wait before the first token and ``token_ms`` the wait between
tokens, so benchmarks can model a realistic server.
"""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import AsyncIterator, Mapping, Sequence
from typing import Any, ClassVar

from laneway.local import tokenizer
from laneway.local.engines.base import (
    Prompt,
    SamplingParams,
    UnsupportedSchemaError,
    limits,
)
from laneway.local.engines.schema_instance import minimal_instance

#: Tokens of framing counted per turn, as a chat template would add.
TURN_OVERHEAD_TOKENS = 3


class EchoEngine:
    """With a JSON schema to follow, it answers with a minimal instance of the schema."""

    name = "echo"
    #: It simulates the API: it answers as the model asked for (at that model's price).
    model_id: str | None = None
    sampling_defaults: ClassVar[Mapping[str, float]] = {}
    #: As large as Claude's, so that only a really long prompt is refused.
    context_window = 200_000

    def check_schema(self, schema: str) -> None:
        try:
            minimal_instance(json.loads(schema))
        except (ValueError, TypeError) as exc:
            raise UnsupportedSchemaError(str(exc)) from None

    def __init__(self, *, ttft_ms: float = 0.0, token_ms: float = 0.0) -> None:
        self.ttft_s = ttft_ms / 1000.0
        self.token_s = token_ms / 1000.0

    def count_tokens(self, prompt: Prompt) -> int:
        total = tokenizer.count(prompt.system) + (TURN_OVERHEAD_TOKENS if prompt.system else 0)
        for _role, text in prompt.turns:
            total += tokenizer.count(text) + TURN_OVERHEAD_TOKENS
        return max(1, total)

    def describe(self) -> dict[str, Any]:
        """Its ``GET /v1/models`` facts (see :mod:`laneway.local.models`)."""
        return {
            "display_name": "Echo (laneway's deterministic test engine)",
            **limits(self.context_window),
            "capabilities": {"structured_outputs": {"supported": True}},
        }

    @staticmethod
    def choose_tool(text: str, names: Sequence[str]) -> int | None:
        """Under ``tool_choice: auto``, the tool it calls: the first whose name has a word
        (``get_weather``: weather; ``lookupOrder``: lookup, order) of four letters or
        more in ``text``, the last user turn; none when none has (it answers text)."""
        words = {w.lower() for w in re.findall(r"[A-Za-z]+", text)}
        for index, name in enumerate(names):
            parts = re.findall(r"[A-Z]?[a-z]+|[A-Z]+(?![a-z])", name)
            if any(len(p) >= 4 and p.lower() in words for p in parts):
                return index
        return None

    @staticmethod
    def reply_text(prompt: Prompt) -> str:
        """The whole text the engine would say, before max_tokens and stop sequences."""
        text = prompt.last_user_text
        prefill = prompt.prefill
        if prefill and text.startswith(prefill):
            return text[len(prefill):]
        return text

    async def generate(self, prompt: Prompt, params: SamplingParams) -> AsyncIterator[str]:
        if params.json_schema is not None:
            text = json.dumps(minimal_instance(json.loads(params.json_schema)))
            tokens = [text[i:i + 4] for i in range(0, len(text), 4)]
        else:
            tokens = tokenizer.tokenize(self.reply_text(prompt))
        if self.ttft_s > 0:
            await asyncio.sleep(self.ttft_s)
        for i, token in enumerate(tokens[: params.max_tokens]):
            if i and self.token_s > 0:
                await asyncio.sleep(self.token_s)
            yield token

    async def aclose(self) -> None:
        return None
