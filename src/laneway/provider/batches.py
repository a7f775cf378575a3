"""The provider's Message Batches: the only place laneway calls ``client.messages.batches``.

Part of the provider (:mod:`laneway.provider.client`): the same client, and every SDK error
mapped once by :func:`~laneway.provider.client.sdk_errors`, so callers only meet
:class:`~laneway.errors.ProviderError`. Results are read as the raw JSONL lines the API
serves (not the SDK's models, which add ``null`` fields), so a native result is the
same JSON as a realtime one.
"""

from __future__ import annotations

import json
from collections.abc import AsyncGenerator
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from anthropic.types.messages import MessageBatch

from laneway.errors import BatchesUnsupportedError, RequestError
from laneway.provider.client import Provider, sdk_errors

#: The API's limits per batch: laneway.wire.batches.BATCH_MAX_REQUESTS, BATCH_MAX_BYTES.
#: ``{"requests":[`` and ``]}`` around the requests, which are joined by commas.
BODY_OVERHEAD_BYTES = len(b'{"requests":[]}')


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


def unsupported(err: RequestError) -> bool:
    """Whether a batch call's error says the upstream has no Message Batches: 404 or 405
    on the route, or an ``invalid_request_error`` whose message says they are not
    supported (how Anthropic-compatible upstreams without them answer)."""
    if err.status in (404, 405):
        return True
    text = err.message.lower()
    return err.status == 400 and "not supported" in text and "batch" in text


def _ts(value: datetime | None) -> float | None:
    return value.timestamp() if value is not None else None


def _info(batch: Any) -> BatchInfo:
    counts = batch.request_counts.model_dump()
    return BatchInfo(id=batch.id, status=batch.processing_status,
                     counts={k: int(v) for k, v in counts.items()},
                     created_at=_ts(batch.created_at) or 0.0, ended_at=_ts(batch.ended_at))


class Batches:
    """The Message Batches calls laneway makes, on a :class:`Provider`'s client."""

    def __init__(self, provider: Provider, *, timeout_s: float = 600.0) -> None:
        self.client = provider.client
        self.timeout_s = timeout_s

    async def create(self, body: bytes) -> BatchInfo:
        """Create a batch from a body of requests (``{"requests":[...]}``).

        The bytes are sent as they are, so the size checked is the size sent.
        """
        try:
            with sdk_errors():
                batch = await self.client.post(
                    "/v1/messages/batches", content=body, cast_to=MessageBatch,
                    options={"headers": {"content-type": "application/json"},
                             "timeout": self.timeout_s})
        except RequestError as err:
            if unsupported(err):
                raise BatchesUnsupportedError(
                    f"the upstream has no Message Batches (HTTP {err.status} to "
                    f"/v1/messages/batches: {err.message})", status=err.status,
                    request_id=err.request_id) from err
            raise
        return _info(batch)

    async def retrieve(self, batch_id: str) -> BatchInfo:
        with sdk_errors():
            return _info(await self.client.messages.batches.retrieve(batch_id))

    async def cancel(self, batch_id: str) -> BatchInfo:
        with sdk_errors():
            return _info(await self.client.messages.batches.cancel(batch_id))

    async def recent(self, *, since: float, page_size: int = 100) -> list[BatchInfo]:
        """Batches created at or after ``since`` (UNIX time), newest first."""
        found: list[BatchInfo] = []
        with sdk_errors():
            async for batch in self.client.messages.batches.list(limit=page_size):
                info = _info(batch)
                if info.created_at < since:
                    break
                found.append(info)
        return found

    async def results(self, batch_id: str) -> AsyncGenerator[dict[str, Any], None]:
        """The results of an ended batch, one ``{"custom_id", "result"}`` dict per line."""
        with sdk_errors():
            async with self.client.messages.batches.with_streaming_response.results(
                    batch_id, timeout=self.timeout_s) as response:
                async for line in response.iter_lines():
                    if line.strip():
                        yield json.loads(line)

    async def first_result(self, batch_id: str) -> dict[str, Any] | None:
        """One result line of an ended batch (enough to tell whose batch it is)."""
        gen = self.results(batch_id)
        try:
            async for item in gen:
                return item
        finally:
            await gen.aclose()
        return None


__all__ = ["BODY_OVERHEAD_BYTES", "BatchInfo", "Batches"]
