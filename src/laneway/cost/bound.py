"""The worst case of a Messages request: an upper bound on what the upstream may bill.

A budget holds this bound while the request is in flight (and keeps it when the
request's real usage is never seen). It is a bound, not an estimate: planning
(``laneway estimate``, the planner) keeps :mod:`laneway.cost.tokens`' cheap guess.

- Input: at most one token per byte of the request's body (no tokenizer gives a
  token less than one byte of JSON: a token is at least one character, and the body
  spells every character in at least one byte). Input the gateway cannot size (a
  ``thread: continue``, a URL or ``file_id`` source, a PDF, whose pages also bill as
  images) adds the model's context window (:func:`context_window`) for each such
  source; an image may bill more tokens than its bytes (one of a single colour
  compresses to almost nothing): each adds :data:`IMAGE_TOKENS`.
- Input at the highest price that applies: a cache write (1 h when a ``ttl: 1h`` is
  asked) when ``cache_control`` appears anywhere; with the 1M-token context beta, the
  long-context premium (input 2x, output 1.5x).
- Output: ``max_tokens``.
- Server tools: each use may bring a context window of input (its results), and web
  search bills $10 per 1,000 uses: ``max_uses`` of each, or ``max_tokens`` uses when
  none is set (a use takes at least one output token).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from laneway.cost.prices import BATCH_DISCOUNT, is_local, price_of

#: Input tokens a request can carry on most models.
CONTEXT_WINDOW = 200_000
#: With the ``context-1m`` beta (``anthropic-beta: context-1m-...``).
LONG_CONTEXT_WINDOW = 1_000_000
#: Input tokens one image may bill at most, however few bytes it is sent in (a large
#: image of one colour compresses to almost nothing; the API bills an image by its
#: size after resizing, at most about 1,600 tokens, more on high-resolution models).
IMAGE_TOKENS = 10_000
#: USD per web search.
WEB_SEARCH_USD = 10.0 / 1000
_UNSIZED_SOURCES = frozenset({"url", "file"})
_SERVER_TOOLS = ("web_search", "web_fetch", "code_execution", "bash_code_execution",
                 "text_editor_code_execution", "tool_search")


@dataclass(frozen=True, slots=True)
class Bound:
    """The worst case of one request, and what it is made of."""

    usd: float
    input_tokens: int
    input_price: float
    output_tokens: int
    output_price: float
    tool_uses: int = 0
    tool_fees_usd: float = 0.0
    unsized: int = 0
    batch: bool = False

    def explain(self) -> str:
        """What the bound is made of, for a refusal."""
        sized = "one token per byte of the body"
        if self.unsized:
            sized += f", + {self.unsized} context window(s) for input laneway cannot size"
        parts = [f"input <= {self.input_tokens:,} tokens at ${self.input_price:g}/M ({sized})",
                 f"output <= max_tokens {self.output_tokens:,} at ${self.output_price:g}/M"]
        if self.tool_uses:
            parts.append(f"{self.tool_uses} server-tool use(s) (${self.tool_fees_usd:.4f} "
                         "in fees, a context window of input each)")
        if self.batch:
            parts.append("at the batch price")
        return f"${self.usd:.4f}: " + "; ".join(parts)


def context_window(beta: str | None) -> int:
    return LONG_CONTEXT_WINDOW if beta and "context-1m" in beta else CONTEXT_WINDOW


def _walk(node: Any, found: dict[str, int]) -> None:
    if isinstance(node, dict):
        if "cache_control" in node:
            found["cache"] += 1
            cc = node.get("cache_control")
            if isinstance(cc, dict) and cc.get("ttl") == "1h":
                found["cache_1h"] += 1
        if node.get("type") == "image":
            found["images"] += 1
        source = node.get("source")
        if isinstance(source, dict) and (source.get("type") in _UNSIZED_SOURCES or
                                         source.get("media_type") == "application/pdf"):
            found["unsized"] += 1
        for value in node.values():
            _walk(value, found)
    elif isinstance(node, list):
        for value in node:
            _walk(value, found)


def _tool_uses(body: dict[str, Any], max_tokens: int) -> tuple[int, int]:
    """(uses of any server tool, of which web searches), at most."""
    uses = searches = 0
    for tool in body.get("tools") or ():
        kind = str(tool.get("type") or "") if isinstance(tool, dict) else ""
        if not kind.startswith(_SERVER_TOOLS):
            continue
        given = tool.get("max_uses")
        n = given if isinstance(given, int) and given > 0 else max_tokens
        uses += n
        if kind.startswith("web_search"):
            searches += n
    return uses, searches


def worst_case(body: dict[str, Any], body_bytes: int, *, beta: str | None = None,
               local: bool = False, batch: bool = False) -> Bound:
    """The bound of one request of ``body`` (``body_bytes`` long); raises
    :class:`~laneway.errors.UnknownModelError` for a model with no known price."""
    model = str(body.get("model") or "")
    raw_max = body.get("max_tokens")
    max_tokens = raw_max if isinstance(raw_max, int) and raw_max > 0 else 0
    if local or is_local(model):
        return Bound(0.0, body_bytes, 0.0, max_tokens, 0.0)
    price = price_of(model)
    found = {"cache": 0, "cache_1h": 0, "unsized": 0, "images": 0}
    _walk(body, found)
    if body.get("thread") is not None:
        found["unsized"] += 1
    window = context_window(beta)
    uses, searches = _tool_uses(body, max_tokens)
    input_tokens = body_bytes + (found["unsized"] + uses) * window + \
        found["images"] * IMAGE_TOKENS
    input_price = price.input
    if found["cache"]:
        input_price = max(input_price, price.cache_write_1h if found["cache_1h"]
                          else price.cache_write_5m)
    output_price = price.output
    if window > CONTEXT_WINDOW:
        input_price, output_price = input_price * 2.0, output_price * 1.5
    fees = searches * WEB_SEARCH_USD
    usd = (input_tokens * input_price + max_tokens * output_price) / 1_000_000
    if batch:
        usd *= BATCH_DISCOUNT
    return Bound(usd + fees, input_tokens, input_price, max_tokens, output_price,
                 uses, fees, found["unsized"], batch)


def total(bounds: list[Bound], *, batch: bool = False) -> Bound:
    """Several requests' bounds as one (a Message Batch's): sums; the highest prices."""
    return Bound(sum(b.usd for b in bounds), sum(b.input_tokens for b in bounds),
                 max((b.input_price for b in bounds), default=0.0),
                 sum(b.output_tokens for b in bounds),
                 max((b.output_price for b in bounds), default=0.0),
                 sum(b.tool_uses for b in bounds), sum(b.tool_fees_usd for b in bounds),
                 sum(b.unsized for b in bounds), batch)
