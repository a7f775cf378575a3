"""The wire side of native Message Batches: batch custom_ids, request bytes, SDK calls.

A job goes into a batch under a safe id made from its seq and the ledger's batch id,
``j{seq}_{batch}``: the user's own ``custom_id`` may not match the API's
``^[a-zA-Z0-9_-]{1,64}$``, and the batch part makes every request id unique to one
submission, so a result can never be filed under the wrong batch (nor a batch found
by ``list`` be mistaken for another one).

Sizes are measured on the bytes the SDK sends: it encodes a body as compact JSON with
``ensure_ascii=False``, and so does :func:`encode_request`.

Every SDK call goes through :func:`laneway.provider.map_error`, so callers only meet
:class:`~laneway.errors.ProviderError`. Results are read as the raw JSONL lines the
API serves (not the SDK's models, which add ``null`` fields), so a native result is the
same JSON as a realtime one.
"""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import AsyncGenerator
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from laneway.provider import Provider, map_error

#: The API's limits per batch.
MAX_REQUESTS = 100_000
MAX_BYTES = 256 * 1024 * 1024
#: ``{"requests":[`` and ``]}`` around the requests, which are joined by commas.
BODY_OVERHEAD_BYTES = len(b'{"requests":[]}')

_CUSTOM_ID = re.compile(r"^j(\d+)_([a-z0-9]+)$")


def batch_custom_id(seq: int, batch_id: str) -> str:
    return f"j{seq}_{batch_id}"


def parse_custom_id(custom_id: str) -> tuple[int, str] | None:
    """``(seq, batch_id)`` of a batch custom_id laneway made, else ``None``."""
    m = _CUSTOM_ID.match(custom_id)
    return (int(m.group(1)), m.group(2)) if m else None


def encode_request(seq: int, batch_id: str, params: dict[str, Any]) -> bytes:
    """One request of a batch body, exactly as the SDK encodes it."""
    item = {"custom_id": batch_custom_id(seq, batch_id), "params": params}
    return json.dumps(item, ensure_ascii=False, separators=(",", ":")).encode()


def body_bytes(request_sizes: list[int]) -> int:
    """The size of a create body holding requests of these sizes."""
    return BODY_OVERHEAD_BYTES + sum(request_sizes) + max(0, len(request_sizes) - 1)


@dataclass(frozen=True, slots=True)
class BatchInfo:
    """What laneway reads of a provider's batch object."""

    id: str
    status: str  # in_progress, canceling, ended
    counts: dict[str, int]
    created_at: float
    ended_at: float | None

    @property
    def total(self) -> int:
        return sum(self.counts.values())

    @property
    def ended(self) -> bool:
        return self.status == "ended"

    def describe(self) -> str:
        c = self.counts
        if not self.ended:
            return f"{self.status}, {c.get('processing', 0)} processing"
        parts = [f"{c[k]} {k}" for k in ("succeeded", "errored", "canceled", "expired")
                 if c.get(k)]
        return "ended: " + (", ".join(parts) or "empty")


def _ts(value: datetime | None) -> float | None:
    return value.timestamp() if value is not None else None


def _info(batch: Any) -> BatchInfo:
    counts = batch.request_counts.model_dump()
    return BatchInfo(id=batch.id, status=batch.processing_status,
                     counts={k: int(v) for k, v in counts.items()},
                     created_at=_ts(batch.created_at) or 0.0, ended_at=_ts(batch.ended_at))


class BatchAPI:
    """The Message Batches calls laneway makes, on a :class:`Provider`'s client."""

    def __init__(self, provider: Provider, *, timeout_s: float = 600.0) -> None:
        self.client = provider.client
        self.timeout_s = timeout_s

    async def create(self, body: bytes) -> BatchInfo:
        """Create a batch from a body made of :func:`encode_request` parts.

        The bytes are sent as they are, so the size checked is the size sent.
        """
        try:
            batch = await self.client.post(
                "/v1/messages/batches", content=body, cast_to=_batch_type(),
                options={"headers": {"content-type": "application/json"},
                         "timeout": self.timeout_s})
        except (asyncio.CancelledError, KeyboardInterrupt):
            raise
        except BaseException as exc:
            raise map_error(exc) from exc
        return _info(batch)

    async def retrieve(self, batch_id: str) -> BatchInfo:
        try:
            return _info(await self.client.messages.batches.retrieve(batch_id))
        except (asyncio.CancelledError, KeyboardInterrupt):
            raise
        except BaseException as exc:
            raise map_error(exc) from exc

    async def cancel(self, batch_id: str) -> BatchInfo:
        try:
            return _info(await self.client.messages.batches.cancel(batch_id))
        except (asyncio.CancelledError, KeyboardInterrupt):
            raise
        except BaseException as exc:
            raise map_error(exc) from exc

    async def recent(self, *, since: float, page_size: int = 100) -> list[BatchInfo]:
        """Batches created at or after ``since`` (UNIX time), newest first."""
        found: list[BatchInfo] = []
        try:
            async for batch in self.client.messages.batches.list(limit=page_size):
                info = _info(batch)
                if info.created_at < since:
                    break
                found.append(info)
        except (asyncio.CancelledError, KeyboardInterrupt):
            raise
        except BaseException as exc:
            raise map_error(exc) from exc
        return found

    async def results(self, batch_id: str) -> AsyncGenerator[dict[str, Any], None]:
        """The results of an ended batch, one ``{"custom_id", "result"}`` dict per line."""
        try:
            async with self.client.messages.batches.with_streaming_response.results(
                    batch_id, timeout=self.timeout_s) as response:
                async for line in response.iter_lines():
                    if line.strip():
                        yield json.loads(line)
        except (asyncio.CancelledError, KeyboardInterrupt, GeneratorExit):
            raise
        except BaseException as exc:
            raise map_error(exc) from exc

    async def first_result(self, batch_id: str) -> dict[str, Any] | None:
        """One result line of an ended batch (enough to tell whose batch it is)."""
        gen = self.results(batch_id)
        try:
            async for item in gen:
                return item
        finally:
            await gen.aclose()
        return None


def _batch_type() -> Any:
    from anthropic.types.messages import MessageBatch

    return MessageBatch
