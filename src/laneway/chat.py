"""A streaming conversation: history, system prompt, time to first token, usage and cost.

>>> conv = Conversation(provider, model="claude-haiku-4-5", system="Be brief.")
>>> turn = await conv.send("Hello", on_text=print_delta)
>>> turn.ttft_s, turn.tokens_per_s, turn.usage, turn.cost_usd

Each :meth:`Conversation.send` streams one answer. With a :class:`~laneway.governor.core.Governor`
the request goes through its interactive lane, so a person's answer is admitted before
any waiting background work.

**Cancelling.** Cancelling the task that awaits :meth:`send` closes the HTTP connection
(generation stops upstream) and leaves the history as it was before the call: neither
the question nor the half answer is kept, so the next turn starts from the last complete
exchange. The partial text stays readable in :attr:`Conversation.last_partial`.

**Retries.** A retryable failure (429, 529, 5xx, a dropped connection, an ``error``
event mid-stream) that comes *before any text reached the caller* is retried up to
``retries`` times after a short backoff; once text has been shown, the error is raised
(sending it again would show the person a second, different answer).
"""

from __future__ import annotations

import asyncio
import json
import random
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from laneway.cost import tokens
from laneway.cost.answered import Priced, note, price_answer
from laneway.cost.prices import Usage
from laneway.errors import (
    ConfigError,
    RateLimitedError,
    RetryableError,
)
from laneway.governor.buckets import Lane
from laneway.governor.core import Governor
from laneway.jobs.formats import DEFAULT_MODEL
from laneway.provider.client import OnText, Provider, Reply


@dataclass(slots=True, kw_only=True)
class Turn:
    """One exchange: the question, the answer, and what it took."""

    user: str
    text: str
    #: The model asked for, and the one that answered (the answer's ``model``).
    model: str
    answered_model: str = ""
    usage: dict[str, Any] = field(default_factory=dict)
    #: ``None`` when the model's price is unknown (never silently zero).
    cost_usd: float | None = 0.0
    ttft_s: float | None = None
    elapsed_s: float = 0.0
    stop_reason: str | None = None
    attempts: int = 1
    request_id: str | None = None
    #: What the asked model would have cost, when another model answered.
    asked_cost_usd: float | None = None

    @property
    def note(self) -> str:
        """The one line naming both models when another than the asked one answered."""
        return note(self.model, self.answered_model or self.model, self.cost_usd,
                    self.asked_cost_usd)

    @property
    def input_tokens(self) -> int:
        return int(self.usage.get("input_tokens") or 0)

    @property
    def output_tokens(self) -> int:
        return int(self.usage.get("output_tokens") or 0)

    @property
    def tokens_per_s(self) -> float | None:
        """Output tokens per second after the first token (the generation speed)."""
        if self.ttft_s is None:
            return None
        gen_s = self.elapsed_s - self.ttft_s
        if gen_s <= 0 or self.output_tokens <= 1:
            return None
        return (self.output_tokens - 1) / gen_s

    def as_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["tokens_per_s"] = self.tokens_per_s
        return data


def turn_cost(provider: Provider, model: str, reply: Reply) -> Priced:
    """What an answer cost: 0 on the local model, ``None`` for a model with no known
    price; and what the model asked for would have cost, when another answered."""
    return price_answer(model, reply.message, Usage.from_api(dict(reply.usage)),
                        free=provider.costs_nothing)


class Conversation:
    """A multi-turn streaming chat over one :class:`Provider` (see the module docstring)."""

    def __init__(
        self, provider: Provider, *, model: str = DEFAULT_MODEL, system: str | None = None,
        max_tokens: int = 1024, governor: Governor | None = None,
        history: list[dict[str, Any]] | None = None, retries: int = 2,
        backoff_s: float = 0.25, max_retry_wait_s: float = 10.0,
        idle_timeout_s: float = 60.0, timeout_s: float = 600.0,
        extra_params: Mapping[str, Any] | None = None,
        sleep: Callable[[float], Any] = asyncio.sleep,
    ) -> None:
        if max_tokens < 1:
            raise ConfigError(f"--max-tokens {max_tokens}: must be at least 1")
        self.provider = provider
        self.model = model
        self.system = system
        self.max_tokens = max_tokens
        self.governor = governor
        self.retries = retries
        self.backoff_s = backoff_s
        self.max_retry_wait_s = max_retry_wait_s
        self.idle_timeout_s = idle_timeout_s
        self.timeout_s = timeout_s
        self.extra_params = dict(extra_params or {})
        self._sleep = sleep
        #: The Messages API ``messages`` of every complete exchange so far.
        self.messages: list[dict[str, Any]] = [dict(m) for m in history or []]
        self.turns: list[Turn] = []
        #: The text that had arrived when the last answer was cancelled or failed.
        self.last_partial: str = ""
        self._rng = random.Random()

    # -- history -------------------------------------------------------------------------
    def reset(self) -> None:
        """Forget every exchange (the system prompt and settings stay)."""
        self.messages.clear()
        self.turns.clear()
        self.last_partial = ""

    def params(self, text: str) -> dict[str, Any]:
        """The request :meth:`send` would make for ``text``."""
        params: dict[str, Any] = {
            "model": self.model, "max_tokens": self.max_tokens,
            "messages": [*self.messages, {"role": "user", "content": text}],
            **self.extra_params,
        }
        if self.system:
            params["system"] = self.system
        return params

    def as_json(self) -> dict[str, Any]:
        """The conversation as JSON (what ``/save`` writes)."""
        total_cost: float | None = 0.0
        for t in self.turns:
            total_cost = None if total_cost is None or t.cost_usd is None else \
                total_cost + t.cost_usd
        return {"model": self.model, "system": self.system, "max_tokens": self.max_tokens,
                "messages": self.messages, "turns": [t.as_dict() for t in self.turns],
                "cost_usd": total_cost}

    def save(self, path: str | Path) -> Path:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(self.as_json(), indent=2, ensure_ascii=False) + "\n",
                        encoding="utf-8")
        return path

    # -- sending -------------------------------------------------------------------------
    async def send(self, text: str, *, on_text: OnText | None = None) -> Turn:
        """Stream the answer to ``text``, calling ``on_text`` with each delta."""
        if not text.strip():
            raise ConfigError("the message is empty")
        params = self.params(text)
        self.last_partial = ""
        shown: list[str] = []

        async def deliver(delta: str) -> None:
            shown.append(delta)
            self.last_partial += delta
            if on_text is not None:
                res = on_text(delta)
                if res is not None:
                    await res

        attempts = 0
        while True:
            attempts += 1
            try:
                reply = await self._stream_once(params, deliver)
                break
            except RetryableError as err:
                wait_s = self._retry_wait_s(err, attempts=attempts, shown=bool(shown))
                if wait_s is None:
                    raise
                await self._sleep(wait_s)
        priced = turn_cost(self.provider, self.model, reply)
        turn = Turn(
            user=text, text=reply.text, model=self.model, answered_model=priced.answered,
            usage=dict(reply.usage), cost_usd=priced.cost_usd,
            asked_cost_usd=priced.asked_cost_usd,
            ttft_s=reply.ttft_s, elapsed_s=reply.elapsed_s,
            stop_reason=reply.message.get("stop_reason"), attempts=attempts,
            request_id=reply.request_id,
        )
        self.messages.append({"role": "user", "content": text})
        self.messages.append({"role": "assistant", "content": reply.text})
        self.turns.append(turn)
        return turn

    def _retry_wait_s(self, err: RetryableError, *, attempts: int, shown: bool) -> float | None:
        """Seconds before the next try, or ``None`` to give up and raise ``err``."""
        if shown or attempts > self.retries:
            return None
        if isinstance(err, RateLimitedError) and err.retry_after_s is not None:
            if err.retry_after_s > self.max_retry_wait_s:
                return None  # a person should not sit through a long pause: say so
            return float(err.retry_after_s)
        base = self.backoff_s * 2.0 ** (attempts - 1)
        return base * (0.5 + 0.5 * self._rng.random())

    async def _stream_once(self, params: dict[str, Any], deliver: OnText) -> Reply:
        if self.governor is None:
            return await self.provider.stream(params, on_text=deliver,
                                              idle_timeout_s=self.idle_timeout_s,
                                              timeout_s=self.timeout_s)
        permit = await self.governor.acquire(
            Lane.INTERACTIVE, self.model, input_tokens=tokens.input_tokens(params),
            max_tokens=self.max_tokens)
        with self.governor.given_back_on_failure(permit):
            reply = await self.provider.stream(params, on_text=deliver,
                                               idle_timeout_s=self.idle_timeout_s,
                                               timeout_s=self.timeout_s)
        self.governor.release(permit, outcome="ok", usage=reply.usage, headers=reply.headers)
        return reply
