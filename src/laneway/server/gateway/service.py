"""The gateway: the Anthropic API on ``laneway serve``, in front of the upstream.

``POST /v1/messages`` goes through the governor in a lane and is relayed (see
:mod:`.relay`); ``count_tokens`` and ``GET /v1/models`` are relayed as they are (they
do not use the Messages rate limits). Every request is identified by its client key
(:mod:`.clients`), checked against the key's budget and rate, and recorded when its
answer is complete (:mod:`.accounting`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from fastapi import Request
from fastapi.responses import Response

from laneway.cost import tokens
from laneway.cost.prices import known, worst_cost
from laneway.server.gateway.accounting import Recorder
from laneway.server.gateway.admission import (
    LANE_HEADER,
    BadLane,
    ClientGone,
    ClientWatch,
    WaitedTooLong,
    WaitLimits,
    choose_lane,
)
from laneway.server.gateway.batches import GatewayBatches
from laneway.server.gateway.clients import Clients, Refusal
from laneway.server.gateway.exchange import CLIENT_CLOSED, Exchange
from laneway.server.gateway.headers import upstream_headers
from laneway.server.gateway.intake import (
    MESSAGES_LIMIT,
    ClientLeft,
    IntakeLimits,
    check_access,
    read_json,
)
from laneway.server.gateway.loop import VIA_HEADER, looped, via
from laneway.server.gateway.relay import Relay
from laneway.server.gateway.stats import LiveStats
from laneway.wire.errors import api_error

if TYPE_CHECKING:
    from laneway.agent import HybridAgent


@dataclass(frozen=True, slots=True)
class GatewaySettings:
    waits: WaitLimits = field(default_factory=WaitLimits)
    #: How long one upstream request may take (the SDKs' own default is 10 minutes).
    upstream_timeout_s: float = 600.0
    #: Every request needs a laneway key (off loopback, or with ``--token``).
    require_key: bool = False
    #: ``laneway serve --token``, accepted as an API key too.
    token: str | None = None
    #: Base URL clients reach this server at (``results_url`` of the Message Batches is
    #: built on it), e.g. a proxy's; None: the address a connection arrived at.
    public_url: str | None = None
    #: How long a batch's cancel waits for its upstream batches to end before it
    #: collects what they hold in the background.
    cancel_wait_s: float = 10.0
    #: How long a body may take to arrive, and what its JSON may hold.
    intake: IntakeLimits = field(default_factory=IntakeLimits)


class Gateway:
    def __init__(self, agent: HybridAgent, settings: GatewaySettings | None = None) -> None:
        self.agent = agent
        self.settings = settings or GatewaySettings()
        self.clients = Clients(lambda: agent.astore, require_key=self.settings.require_key,
                               token=self.settings.token)
        self.recorder = Recorder(lambda: agent.astore)
        #: Message Batches (``/v1/messages/batches``), fulfilled by laneway runs.
        self.batches = GatewayBatches(agent, self.clients, public_url=self.settings.public_url,
                                      cancel_wait_s=self.settings.cancel_wait_s,
                                      intake=self.settings.intake)
        #: Called with every finished request (the ledger's recorder, the metrics).
        self.observers: list[Callable[[Exchange], None]] = [self.recorder]
        #: The live traffic (the Traffic page, ``GET /v1/laneway/traffic``).
        self.stats = LiveStats(lambda: agent.governor)
        self.observers.append(self.stats.observe)
        self._relay: Relay | None = None

    @property
    def relay(self) -> Relay:
        if self._relay is None:  # the agent's provider exists once the app has started
            self._relay = Relay(self.agent.governor, self.agent.provider,
                                self.settings.waits, self.finish,
                                self.settings.upstream_timeout_s)
        return self._relay

    async def start(self) -> None:
        """Take up the Message Batches a gateway before this one left unfinished."""
        await self.batches.resume()

    async def aclose(self) -> None:
        """Stop driving batches (their runs stop with the agent, to be resumed by the
        next gateway); write the traffic not yet in the ledger."""
        await self.batches.aclose()
        await self.recorder.aclose()

    def finish(self, ex: Exchange) -> None:
        self.clients.settle(ex.key_id, ex.worst_usd, ex.cost_usd)
        for observe in self.observers:
            observe(ex)

    async def caller(self, request: Request) -> None:
        """Who sends the request and from where, before its body is read: its credentials
        and key (401), then the token and Host rules (:func:`.intake.check_access`); a
        :class:`Refusal` otherwise."""
        await self.clients.identify(request.headers)
        check_access(request.scope, token=self.settings.token)

    async def messages(self, request: Request) -> Response:
        if looped(request.headers.get(VIA_HEADER)):
            return _loop_detected()
        try:
            content, body = await read_json(request, limit=MESSAGES_LIMIT,
                                            limits=self.settings.intake)
        except Refusal as refusal:
            return api_error(refusal.status, refusal.error_type, refusal.message,
                             headers=refusal.headers)
        except ClientLeft:
            return Response(status_code=CLIENT_CLOSED)
        streamed = body.get("stream") is True
        try:
            key = await self.clients.identify(request.headers)
            lane = choose_lane(streamed=streamed, header=request.headers.get(LANE_HEADER),
                               key_lane=key.lane if key else None)
        except Refusal as refusal:
            return api_error(refusal.status, refusal.error_type, refusal.message,
                             headers=refusal.headers)
        except BadLane as exc:
            return api_error(400, "invalid_request_error", str(exc))
        ex = Exchange(model=str(body.get("model") or ""), lane=lane, streamed=streamed,
                      key_id=key.id if key else None, key_name=key.name if key else "local")
        max_tokens = body.get("max_tokens")
        max_tokens = max_tokens if isinstance(max_tokens, int) and max_tokens > 0 else 1
        input_tokens = tokens.input_tokens(body)
        local = self.agent.provider.is_local
        try:
            if key is not None and key.budget_usd is not None and not local \
                    and not known(ex.model):
                raise Refusal(403, "permission_error",
                              f"laneway key {key.name!r} has a budget, and model "
                              f"{ex.model!r} has no known price to count against it")
            worst = worst_cost(ex.model, input_tokens, max_tokens, local=local)
            self.clients.admit(key, worst)
        except Refusal as refusal:
            return self._refuse(ex, refusal.status, refusal.error_type, refusal.message,
                                refusal.headers)
        ex.worst_usd = worst
        watch = ClientWatch(request.receive)
        try:
            return await self.relay.messages(ex, watch, content, _forwarded(request),
                                             input_tokens=input_tokens, max_tokens=max_tokens,
                                             query=dict(request.query_params))
        except ClientGone:
            ex.end(CLIENT_CLOSED, local=self.agent.provider.is_local)
            self.finish(ex)
            return Response(status_code=CLIENT_CLOSED)
        except WaitedTooLong as exc:
            return self._refuse(ex, 429, "rate_limit_error",
                                f"the {lane} lane's quota is spent: laneway waited "
                                f"{self.settings.waits.of(lane):.0f} s for it",
                                {"retry-after": str(int(exc.retry_after_s))}, retried=True)
        finally:
            watch.stop()

    def _refuse(self, ex: Exchange, status: int, error_type: str, message: str,
                headers: dict[str, str] | None = None, *, retried: bool = False) -> Response:
        ex.end(status, local=self.agent.provider.is_local)
        self.finish(ex)
        return api_error(status, error_type, message, headers=headers, retried=retried)

    async def passthrough(self, request: Request, path: str) -> Response:
        """Relay a request that uses no Messages quota (count_tokens, models) as it is."""
        if looped(request.headers.get(VIA_HEADER)):
            return _loop_detected()
        try:
            content = (await read_json(request, limit=MESSAGES_LIMIT,
                                       limits=self.settings.intake))[0] \
                if request.method == "POST" else None
            lane = choose_lane(streamed=False, header=request.headers.get(LANE_HEADER),
                               key_lane=None)
        except Refusal as refusal:
            return api_error(refusal.status, refusal.error_type, refusal.message,
                             headers=refusal.headers)
        except ClientLeft:
            return Response(status_code=CLIENT_CLOSED)
        except BadLane as exc:
            return api_error(400, "invalid_request_error", str(exc))
        watch = ClientWatch(request.receive)
        try:
            return await self.relay.passthrough(
                watch, request.method, path, wait_s=self.settings.waits.of(lane),
                content=content, headers=_forwarded(request),
                query=dict(request.query_params))
        except ClientGone:
            return Response(status_code=CLIENT_CLOSED)
        finally:
            watch.stop()


def _forwarded(request: Request) -> dict[str, str]:
    """The client's headers to send upstream, with this gateway named in ``laneway-via``."""
    headers = upstream_headers(request.headers.items())
    headers[VIA_HEADER] = via(request.headers.get(VIA_HEADER))
    return headers


def _loop_detected() -> Response:
    return api_error(508, "api_error", "this request has already passed through this "
                     "gateway: its upstream (ANTHROPIC_BASE_URL) leads back to it")


def gateway_of(request: Request) -> Gateway:
    gateway: Any = request.app.state.gateway
    assert isinstance(gateway, Gateway)
    return gateway
