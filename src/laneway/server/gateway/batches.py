"""Message Batches on the gateway: the API's calls, fulfilled by laneway runs.

``POST /v1/messages/batches`` is checked as the API checks it (the local API's rules,
:mod:`laneway.wire.batches`: 100,000 requests, 256 MB, ``custom_id``), and
answered at once with the batch object once the batch is durable: its input is saved
beside the ledger and its row written (:mod:`laneway.store.gateway_batches`). Behind
it, the batch is a run of the ledger named by the batch's id, carried out among the
process's background runs (:mod:`laneway.runs.background`) in the background lane
under the shared governor (:mod:`.batch_driver`), through
the upstream's batches or realtime (:mod:`.batch_plan`).

``retrieve``, ``list``, ``cancel``, ``delete`` and the results answer as the API does
(:mod:`.batch_objects`). A batch belongs to the client key that made it: another key
(or the anonymous local client) neither sees nor touches it, as if it did not exist.

Every call goes through the admission chain (:mod:`.pipeline`: a key, its rate). A
create reserves the batch's whole worst case against the key's budget before it is
accepted (the sum of its requests' bounds, :mod:`laneway.cost.bound`): at the batch
price when it goes to the upstream's batches with no deadline (``native``), else at the
realtime price (``realtime``, ``auto``, ``hybrid``, a deadline's fallback may send any
of it realtime). A batch that does not fit is refused 403 whole. When the batch ends its
reservation is settled at what its run's jobs cost: the key's spend in ``keys list``,
``/traffic`` and ``/metrics``.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from fastapi import Request
from fastapi.responses import JSONResponse, Response, StreamingResponse

from laneway.cost.bound import Bound, total, worst_case
from laneway.errors import UnknownModelError
from laneway.governor.buckets import Lane
from laneway.server.gateway.batch_driver import BatchDriver
from laneway.server.gateway.batch_objects import (
    DAY_S,
    batch_json,
    read_create,
    result_lines,
)
from laneway.server.gateway.batch_plan import MODE_HEADER, BadPlanHeader, BatchPlan, plan_batch
from laneway.server.gateway.clients import Refusal
from laneway.server.gateway.exchange import Exchange
from laneway.server.gateway.intake import read_json
from laneway.server.gateway.pipeline import READ, Pipeline
from laneway.store import ClientKey, Finished, Store
from laneway.store.gateway_batches import GatewayBatch
from laneway.store.statuses import JobStatus
from laneway.wire.batches import BATCH_MAX_BYTES, errored, results_base_url
from laneway.wire.errors import (
    REQUEST_ID,
    APIError,
    api_error,
    check_version,
    gateway_answer,
)
from laneway.wire.ids import new_id

if TYPE_CHECKING:
    from laneway.agent import HybridAgent

#: Results lines per chunk of the results' answer (each chunk is one ledger read).
_CHUNK = 1000


def _ok(content: Any, headers: dict[str, str] | None = None) -> JSONResponse:
    """A batch call's answer: like every answer of the API's, it carries a request id."""
    return JSONResponse(content, headers={REQUEST_ID: new_id("req"), **(headers or {})})


async def _answer(call: Awaitable[Response]) -> Response:
    try:
        return await call
    except APIError as err:
        return gateway_answer(err)
    except Refusal as refusal:
        return api_error(refusal.status, refusal.error_type, refusal.message,
                         headers=refusal.headers)
    except BadPlanHeader as exc:
        return api_error(400, "invalid_request_error", str(exc))


def _bound(params: list[dict[str, Any]], *, batch: bool, local: bool) -> Bound:
    """The batch's worst case: its requests' bounds summed (a model of no price: 0)."""
    bounds = []
    for p in params:
        try:
            bounds.append(worst_case(p, len(json.dumps(p).encode()), local=local,
                                     batch=batch))
        except UnknownModelError:
            continue
    return total(bounds, batch=batch)


def _refuse_unfinished(store: Store, run_id: str, message: str) -> int:
    """Record every job of the run that is not final (nor held) as errored."""
    total = 0
    while claimed := store.claim(run_id, worker="refuse", limit=1000, lease_s=60.0):
        total += len(store.finish([Finished(
            run_id=run_id, seq=c.seq, status=JobStatus.ERRORED,
            result=errored("permission_error", message), attempts=c.attempts,
            error_type="permission_error", error_message=message, mode="realtime")
            for c in claimed]))
    return total


class GatewayBatches:
    def __init__(self, agent: HybridAgent, pipeline: Pipeline,
                 finish: Callable[[Exchange], None], *, public_url: str | None = None,
                 cancel_wait_s: float = 10.0) -> None:
        self.agent = agent
        self.pipeline = pipeline
        #: The gateway's observers of a finished request (a batch, when it ends).
        self.finish = finish
        self.public_url = public_url
        self.driver = BatchDriver(lambda: agent.runs, cancel_wait_s=cancel_wait_s,
                                  on_end=self._ended, on_no_batches=self._to_realtime)
        #: Why the upstream has no Message Batches, once it said so: later batches are
        #: planned realtime from their create.
        self.no_batches: str | None = None

    async def resume(self) -> int:
        return await self.driver.resume()

    async def aclose(self) -> None:
        await self.driver.aclose()

    # -- the API's calls ----------------------------------------------------------------
    async def create(self, request: Request) -> Response:
        return await _answer(self._create(request))

    async def retrieve(self, request: Request, batch_id: str) -> Response:
        return await _answer(self._retrieve(request, batch_id))

    async def listing(self, request: Request, *, limit: int, after_id: str | None,
                      before_id: str | None) -> Response:
        return await _answer(self._listing(request, limit, after_id, before_id))

    async def cancel(self, request: Request, batch_id: str) -> Response:
        return await _answer(self._cancel(request, batch_id))

    async def delete(self, request: Request, batch_id: str) -> Response:
        return await _answer(self._delete(request, batch_id))

    async def results(self, request: Request, batch_id: str) -> Response:
        return await _answer(self._results(request, batch_id))

    # -- their work ---------------------------------------------------------------------
    async def _key(self, request: Request) -> ClientKey | None:
        check_version(request.headers.get("anthropic-version"))
        return (await self.pipeline.admit(request, READ)).key

    async def _key_id(self, request: Request) -> str | None:
        key = await self._key(request)
        return key.id if key is not None else None

    async def _ended(self, batch_id: str) -> None:
        """Settle the ended batch's reservation at what its run cost; count it."""
        astore = self.agent.astore
        settle = await astore.settle_batch(batch_id, at=time.time())
        if settle is None:
            return
        key = None if settle.key_id is None else await astore.key_by_id(settle.key_id)
        ex = Exchange(model="message_batch", lane=Lane.BACKGROUND, streamed=False,
                      key_id=settle.key_id, key_name=key.name if key else "local",
                      row_id=settle.row_id, worst_usd=settle.worst_usd,
                      cost_usd=settle.cost_usd, status=200,
                      usage={"input_tokens": settle.input_tokens,
                             "output_tokens": settle.output_tokens,
                             "cache_creation_input_tokens":
                                 settle.cache_creation_input_tokens,
                             "cache_read_input_tokens": settle.cache_read_input_tokens})
        self.finish(ex)

    async def _to_realtime(self, batch_id: str, why: str) -> bool:
        """The upstream has no Message Batches: the batch goes realtime, reserved at the
        realtime price; if its key's budget cannot take that, its requests are errored."""
        self.no_batches = why
        astore = self.agent.astore
        store = astore.store
        params = await astore.call(lambda: list(store.unfinished_params(batch_id)))
        bound = await asyncio.to_thread(_bound, params, batch=False,
                                        local=self.agent.provider.costs_nothing)
        reason = f"realtime: {why}"
        if await astore.call(store.batch_to_realtime, batch_id, worst_usd=bound.usd,
                             reason=reason):
            await astore.add_event(batch_id, "plan", {"mode": "realtime", "reason": reason,
                                                      "gateway": True})
            return True
        await astore.call(_refuse_unfinished, store, batch_id,
                          f"{why}; sent realtime it could cost up to {bound.explain()}, "
                          "more than its key's budget has left")
        return False

    async def _owned(self, request: Request, batch_id: str) -> GatewayBatch:
        key_id = await self._key_id(request)
        astore = self.agent.astore
        batch = await astore.call(astore.store.gateway_batch, batch_id, key_id=key_id)
        if batch is None:
            raise APIError("not_found_error", f"message batch {batch_id!r} not found")
        return batch

    async def _json(self, request: Request, batch: GatewayBatch) -> dict[str, Any]:
        astore = self.agent.astore
        counts = None
        if batch.ended_at is not None and batch.input_path is not None:
            counts = await astore.call(astore.store.counts, batch.id)
        return batch_json(batch, counts, results_base_url(request, self.public_url))

    async def _create(self, request: Request) -> Response:
        key = await self._key(request)
        key_id = key.id if key is not None else None
        # A create may be 8 times a message's size: as much time and as many values.
        limits = self.pipeline.intake
        _, data = await read_json(request, limit=BATCH_MAX_BYTES, limits=dataclasses.replace(
            limits, total_s=limits.total_s * 8, max_values=limits.max_values * 8))
        # Off the event loop: a 256 MB batch is seconds of work, and streams wait.
        count, split = await asyncio.to_thread(read_create, data)
        astore, provider = self.agent.astore, self.agent.provider
        learnt = await astore.call(astore.store.batch_durations_s, provider=provider.kind)
        plan = plan_batch(request.headers, split.params, local=provider.is_local,
                          learnt_s=learnt)
        if self.no_batches is not None and plan.mode != "realtime":
            plan = BatchPlan("realtime", f"realtime: {self.no_batches}", plan.deadline_at)
        batch_id = new_id("msgbatch")
        if split.params:
            cheap = plan.mode == "native" and plan.deadline_at is None
            bound = await asyncio.to_thread(_bound, split.params, batch=cheap,
                                            local=provider.costs_nothing)
            models = {str(p.get("model") or "") for p in split.params}
            if key is not None and key.budget_usd is not None and not provider.costs_nothing:
                for model in sorted(models):
                    self.pipeline.bound(key, {"model": model}, 0)  # a model of no price
            await self.pipeline.reserve_batch(
                key, batch_id, models.pop() if len(models) == 1 else "mixed", bound)
        path = await asyncio.to_thread(self._save, split.lines) if split.lines else None
        now = time.time()
        batch = GatewayBatch(
            id=batch_id, key_id=key_id, request_count=count,
            created_at=now, expires_at=now + DAY_S, deadline_at=plan.deadline_at,
            mode=plan.mode, plan=plan.reason, input_path=str(path) if path else None,
            rejected=split.refused, cancel_initiated_at=None,
            ended_at=None if path else now)
        await astore.call(astore.store.add_gateway_batch, batch)
        await astore.call(astore.store.add_event, batch.id, "plan",
                          {"mode": plan.mode, "reason": plan.reason, "gateway": True})
        if path is not None:
            self.driver.start(batch.id)
        return _ok(await self._json(request, batch), {MODE_HEADER: plan.mode})

    def _save(self, lines: list[str]) -> Path:
        return self.agent.save_input(("\n".join(lines) + "\n").encode())

    async def _retrieve(self, request: Request, batch_id: str) -> Response:
        batch = await self._owned(request, batch_id)  # its mode now (realtime after a 404)
        return _ok(await self._json(request, batch), {MODE_HEADER: batch.mode})

    async def _listing(self, request: Request, limit: int, after_id: str | None,
                       before_id: str | None) -> Response:
        key_id = await self._key_id(request)
        if not 1 <= limit <= 1000:
            raise APIError("invalid_request_error", "limit: must be between 1 and 1000")
        astore = self.agent.astore
        page = await astore.call(astore.store.gateway_batch_page, key_id=key_id, limit=limit,
                                 after_id=after_id, before_id=before_id)
        if page is None:
            name, value = ("after_id", after_id) if after_id is not None else \
                ("before_id", before_id)
            raise APIError("invalid_request_error", f"{name}: unknown batch {value!r}")
        data = [await self._json(request, b) for b in page[0]]
        return _ok({"data": data, "has_more": page[1],
                    "first_id": data[0]["id"] if data else None,
                    "last_id": data[-1]["id"] if data else None})

    async def _cancel(self, request: Request, batch_id: str) -> Response:
        batch = await self._owned(request, batch_id)
        astore = self.agent.astore
        if await astore.call(astore.store.cancel_gateway_batch, batch_id):
            self.driver.start(batch_id)  # a batch made before this gateway started
            self.driver.poke(batch_id)
            batch = await self._owned(request, batch_id)
        return _ok(await self._json(request, batch))

    async def _delete(self, request: Request, batch_id: str) -> Response:
        batch = await self._owned(request, batch_id)
        if batch.ended_at is None:
            raise APIError("invalid_request_error",
                           f"message batch {batch_id!r} is still {batch.status}: cancel it "
                           "and wait for it to end before deleting it")
        astore = self.agent.astore
        await astore.call(astore.store.delete_gateway_batch, batch_id)
        return _ok({"id": batch_id, "type": "message_batch_deleted"})

    async def _results(self, request: Request, batch_id: str) -> Response:
        batch = await self._owned(request, batch_id)
        if batch.ended_at is None:
            raise APIError("not_found_error",
                           f"message batch {batch_id!r} has not ended: no results yet")
        return StreamingResponse(self._result_chunks(batch), media_type="application/binary",
                                 headers={REQUEST_ID: new_id("req")})

    async def _result_chunks(self, batch: GatewayBatch) -> AsyncIterator[bytes]:
        astore = self.agent.astore
        if batch.input_path is not None:
            lines = result_lines(astore.store.iter_results(batch.id))

            def next_chunk() -> bytes:  # the generator only ever runs on the store thread
                chunk = [line for _, line in zip(range(_CHUNK), lines, strict=False)]
                return ("\n".join(chunk) + "\n").encode() if chunk else b""

            while chunk := await astore.call(next_chunk):
                yield chunk
        if batch.rejected:
            yield ("\n".join(result_lines(batch.rejected)) + "\n").encode()
