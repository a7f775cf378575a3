"""One admission chain for every gateway route, in one order.

where from (the token and Host rules, :func:`.intake.check_access`: without a token,
loopback only; checked first as it needs no ledger read) → credentials → key (known,
not revoked: read from the ledger on every request) → the key's rate → the body (read
only now, with limits and read timeouts: :func:`.intake.read_json`) → parse and
validate → budget reservation (the request's row, written before anything is sent) →
lane and queue (:mod:`.admission`; a revoke reaches a waiting request,
:mod:`.revocations`) → upstream (:mod:`.relay`) → settle and record
(:mod:`.accounting`).

Routes declare what they need of it (:class:`Needs`): Messages need everything;
``count_tokens`` a key, its rate and the body (no budget: it bills nothing); models and
the Message Batches' reads a key and its rate; a batch's create reserves its whole
worst case (:meth:`Pipeline.reserve_batch`). Each step refuses with a
:class:`~.clients.Refusal`; a request refused before its key is known writes no ledger
row (it is counted in ``/metrics``), one refused after it is recorded under its key,
and from the reservation on the reservation is the request's row. A request refused at
any step costs nothing upstream.
"""

from __future__ import annotations

import os
import secrets
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from fastapi import Request

from laneway.cost.bound import Bound, worst_case
from laneway.errors import UnknownModelError
from laneway.governor.buckets import Lane
from laneway.server.gateway.admission import LANE_HEADER, BadLane, choose_lane
from laneway.server.gateway.clients import Clients, Refusal
from laneway.server.gateway.exchange import Exchange
from laneway.server.gateway.intake import IntakeLimits, check_access, read_json
from laneway.server.gateway.loop import VIA_HEADER, looped
from laneway.store import AsyncStore, ClientKey
from laneway.store.holders import Identity, is_gone, this_identity
from laneway.store.reservations import Reservation
from laneway.wire.errors import MESSAGES_MAX_BYTES

#: How long a reservation may be in flight at most (the upstream timeout, the longest
#: lane wait and a margin): a row ``reserved`` longer than this is interrupted by any
#: process that starts.
MAX_FLIGHT_S = 3600.0


@dataclass(frozen=True, slots=True)
class Needs:
    """What a route needs of the chain."""

    #: Read the body and parse it as a JSON object.
    body: bool = False
    #: Reserve the request's worst case against its key's budget (Messages).
    budget: bool = False


MESSAGES = Needs(body=True, budget=True)
COUNT_TOKENS = Needs(body=True)
READ = Needs()


@dataclass
class Admitted:
    key: ClientKey | None
    lane: Lane
    content: bytes = b""
    body: dict[str, Any] | None = None
    #: Messages: the request, its row reserved (``exchange.row_id``).
    exchange: Exchange | None = None


def this_process() -> str:
    """``host:pid:token``: who holds a reservation, recorded in ``holders`` when the
    gateway starts (:meth:`Pipeline.start`)."""
    return f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(4)}"


def dead_process(me: str, now: float) -> Callable[[str, float, Identity | None], bool]:
    """Whether a reservation's process is gone: in flight longer than
    :data:`MAX_FLIGHT_S`; with no ``holders`` row (a gateway records itself before it
    reserves anything, so it ended, was found gone, or is a laneway before 012); or, by
    :func:`~laneway.store.holders.is_gone`, of this host and not running (its pid dead,
    a zombie, or reused: another start time) or of a boot before this one. Another
    host's process is not judged here: only its time in flight."""
    here = this_identity()

    def dead(process: str, started_at: float, holder: Identity | None) -> bool:
        if now - started_at > MAX_FLIGHT_S:
            return True
        if process == me:
            return False
        return holder is None or is_gone(holder, here)
    return dead


class Pipeline:
    def __init__(self, clients: Clients, astore_of: Callable[[], AsyncStore], *,
                 local: Callable[[], bool], finish: Callable[[Exchange], None],
                 intake: IntakeLimits | None = None) -> None:
        self.clients = clients
        #: How long a body may take to arrive, and what its JSON may hold.
        self.intake = intake or IntakeLimits()
        self._astore_of = astore_of
        self._local = local
        #: Records a request refused after its key was known.
        self._finish = finish
        self.process = this_process()
        #: Called with the status of each request refused before its key was known.
        self.refused_unknown: list[Callable[[int], None]] = []

    async def start(self) -> int:
        """Record this process in ``holders`` (before it reserves anything), then
        interrupt what gone processes left reserved; returns how many rows."""
        astore = self._astore_of()
        await astore.call(astore.store.register_holder, self.process, this_identity())
        return await astore.interrupt_requests(dead_process(self.process, time.time()))

    async def stop(self) -> None:
        """A clean stop: this process's ``holders`` row goes (what it still had
        reserved is then interrupted by the next gateway to start)."""
        astore = self._astore_of()
        await astore.call(astore.store.drop_holder, self.process)

    async def admit(self, request: Request, needs: Needs) -> Admitted:
        """The chain up to the reservation (see the module docstring)."""
        headers = request.headers
        try:
            if looped(headers.get(VIA_HEADER)):
                raise Refusal(508, "api_error", "this request has already passed through "
                              "this gateway: its upstream (ANTHROPIC_BASE_URL) leads back "
                              "to it")
            # Where from (no token: loopback only) before any ledger read.
            check_access(request.scope, token=self.clients.token)
            key = await self.clients.identify(headers)
        except Refusal as refusal:
            if refusal.key is None:
                for observe in self.refused_unknown:
                    observe(refusal.status)
            elif needs.budget:
                self._refused(_exchange(refusal.key), refusal)
            raise
        ex = _exchange(key)
        try:
            return await self._rest(request, needs, key, ex)
        except Refusal as refusal:
            if needs.budget:
                self._refused(ex, refusal)
            raise

    def _refused(self, ex: Exchange, refusal: Refusal) -> None:
        """A Messages request refused once its key was known: recorded under it."""
        ex.end(refusal.status, local=self._local())
        self._finish(ex)

    async def _rest(self, request: Request, needs: Needs, key: ClientKey | None,
                    ex: Exchange) -> Admitted:
        content, body = b"", None
        if needs.body:
            content, body = await read_json(request, limit=MESSAGES_MAX_BYTES,
                                            limits=self.intake)
        streamed = body is not None and body.get("stream") is True
        try:
            lane = choose_lane(streamed=streamed, header=request.headers.get(LANE_HEADER),
                               key_lane=key.lane if key else None)
        except BadLane as exc:
            raise Refusal(400, "invalid_request_error", str(exc)) from None
        admitted = Admitted(key, lane, content, body)
        if not needs.budget or body is None:
            return admitted
        ex.model, ex.lane, ex.streamed = str(body.get("model") or ""), lane, streamed
        bound = self.bound(key, body, len(content), beta=request.headers.get("anthropic-beta"))
        ex.worst_usd = bound.usd
        row = await self._astore_of().reserve(Reservation(
            key_id=ex.key_id, model=ex.model, lane=str(lane), streamed=streamed,
            worst_usd=bound.usd, started_at=ex.started_at, process=self.process))
        if row is None:
            assert key is not None
            raise await self._over_budget(key, bound)
        ex.row_id = row
        admitted.exchange = ex
        return admitted

    def bound(self, key: ClientKey | None, body: dict[str, Any], size: int, *,
              beta: str | None = None, batch: bool = False) -> Bound:
        """The request's worst case; a key with a budget refuses a model of no price."""
        local = self._local()
        try:
            return worst_case(body, size, beta=beta, local=local, batch=batch)
        except UnknownModelError:
            if key is not None and key.budget_usd is not None:
                raise Refusal(403, "permission_error",
                              f"laneway key {key.name!r} has a budget, and model "
                              f"{body.get('model')!r} has no known price to count against "
                              "it") from None
            return Bound(0.0, size, 0.0, 0, 0.0)

    async def reserve_batch(self, key: ClientKey | None, batch_id: str, model: str,
                            bound: Bound) -> None:
        """Reserve a Message Batch's whole worst case (its row, settled when it ends)."""
        row = await self._astore_of().reserve(Reservation(
            key_id=key.id if key else None, model=model, lane=str(Lane.BACKGROUND),
            streamed=False, worst_usd=bound.usd, started_at=time.time(),
            process=self.process, batch_id=batch_id))
        if row is None:
            assert key is not None
            raise await self._over_budget(key, bound, what="this batch")

    async def _over_budget(self, key: ClientKey, bound: Bound, *,
                           what: str = "this request") -> Refusal:
        now = await self._astore_of().key_by_id(key.id)
        if now is None:
            return Refusal(401, "authentication_error",
                           "invalid laneway key (unknown or revoked)")
        return Refusal(403, "permission_error",
                       f"laneway key {key.name!r} has spent ${now.spent_usd:.4f} of its "
                       f"${now.budget_usd or 0.0:.4f} budget (${now.reserved_usd:.4f} in "
                       f"flight, ${now.held_usd:.4f} held after interruptions), and "
                       f"{what} could cost up to {bound.explain()}")


def _exchange(key: ClientKey | None) -> Exchange:
    return Exchange(model="", lane=Lane.BACKGROUND, streamed=False,
                    key_id=key.id if key else None, key_name=key.name if key else "local")
