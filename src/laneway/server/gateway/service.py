"""The gateway: the Anthropic API on ``laneway serve``, in front of the upstream.

Every route goes through one admission chain (:mod:`.pipeline`: key, rate, body,
budget reservation); ``POST /v1/messages`` then goes through the governor in a lane
and is relayed (see :mod:`.relay`); ``count_tokens`` and ``GET /v1/models`` are
relayed as they are (they do not use the Messages rate limits), and every Messages
request's row is settled when its answer is complete (:mod:`.accounting`).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from fastapi import Request
from fastapi.responses import Response

from laneway.cost import tokens
from laneway.server.gateway.accounting import Recorder
from laneway.server.gateway.admission import ClientGone, ClientWatch, WaitedTooLong, WaitLimits
from laneway.server.gateway.batches import GatewayBatches
from laneway.server.gateway.clients import Clients, Refusal
from laneway.server.gateway.exchange import CLIENT_CLOSED, Exchange
from laneway.server.gateway.headers import upstream_headers
from laneway.server.gateway.intake import IntakeLimits
from laneway.server.gateway.loop import VIA_HEADER, via
from laneway.server.gateway.pipeline import COUNT_TOKENS, MESSAGES, READ, Pipeline
from laneway.server.gateway.relay import Relay
from laneway.server.gateway.revocations import Revocations, Revoked
from laneway.server.gateway.stats import LiveStats
from laneway.server.gateway.streamed import RelayedStream
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
    #: False (``serve --no-anonymous``): once a key exists, every request needs one.
    anonymous: bool = True
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
                               token=self.settings.token, anonymous=self.settings.anonymous)
        self.recorder = Recorder(lambda: agent.astore)
        #: The admission chain every route goes through.
        self.pipeline = Pipeline(self.clients, lambda: agent.astore,
                                 local=lambda: agent.provider.costs_nothing, finish=self.finish,
                                 intake=self.settings.intake)
        #: Message Batches (``/v1/messages/batches``), fulfilled by laneway runs.
        self.batches = GatewayBatches(agent, self.pipeline, self.finish,
                                      public_url=self.settings.public_url,
                                      cancel_wait_s=self.settings.cancel_wait_s)
        #: Called with every finished request (the ledger's recorder, the metrics).
        self.observers: list[Callable[[Exchange], None]] = [self.recorder]
        #: The live traffic (the Traffic page, ``GET /v1/laneway/traffic``).
        self.stats = LiveStats(lambda: agent.governor)
        self.observers.append(self.stats.observe)
        #: Revokes reaching the requests that wait in a lane.
        self.revocations = Revocations(lambda: agent.astore)
        self._relay: Relay | None = None

    @property
    def relay(self) -> Relay:
        if self._relay is None:  # the agent's provider exists once the app has started
            self._relay = Relay(self.agent.governor, self.agent.provider,
                                self.settings.waits, self.finish,
                                self.settings.upstream_timeout_s, self.revocations)
        return self._relay

    async def start(self) -> None:
        """Interrupt what dead processes left in flight (charged their worst case, held);
        take up the Message Batches a gateway before this one left unfinished."""
        await self.pipeline.start()
        await self.batches.resume()

    async def aclose(self) -> None:
        """Stop driving batches (their runs stop with the agent, to be resumed by the
        next gateway); write the traffic not yet in the ledger; give back this
        process's ``holders`` row."""
        await self.batches.aclose()
        await self.recorder.aclose()
        with contextlib.suppress(Exception):  # a ledger gone: the next start finds it gone
            await self.pipeline.stop()

    def finish(self, ex: Exchange) -> None:
        for observe in self.observers:
            observe(ex)

    async def messages(self, request: Request) -> Response:
        try:
            admitted = await self.pipeline.admit(request, MESSAGES)
        except Refusal as refusal:
            return _refusal(refusal)
        ex = admitted.exchange
        assert ex is not None and admitted.body is not None
        body = admitted.body
        max_tokens = body.get("max_tokens")
        max_tokens = max_tokens if isinstance(max_tokens, int) and max_tokens > 0 else 1
        watch = ClientWatch(request.receive)
        response: Response | None = None
        try:
            response = await self.relay.messages(
                ex, watch, admitted.content, _forwarded(request),
                input_tokens=tokens.input_tokens(body), max_tokens=max_tokens,
                query=dict(request.query_params))
            return response
        except ClientGone:
            # Once sent, what the upstream billed is unknown: charged the worst case.
            ex.end(CLIENT_CLOSED, local=self.agent.provider.costs_nothing, complete=not ex.sent)
            self.finish(ex)
            return Response(status_code=CLIENT_CLOSED)
        except Revoked:
            ex.end(401, local=self.agent.provider.costs_nothing)
            self.finish(ex)
            return api_error(401, "authentication_error", "invalid laneway key (revoked "
                             "while this request waited in its lane; nothing was sent)")
        except WaitedTooLong as exc:
            lane = ex.lane
            ex.end(429, local=self.agent.provider.costs_nothing)
            self.finish(ex)
            return api_error(429, "rate_limit_error",
                             f"the {lane} lane's quota is spent: laneway waited "
                             f"{self.settings.waits.of(lane):.0f} s for it",
                             headers={"retry-after": str(int(exc.retry_after_s))},
                             retried=True)
        finally:
            if not isinstance(response, RelayedStream):  # a stream watches while it runs
                watch.stop()

    async def passthrough(self, request: Request, path: str) -> Response:
        """Relay a request that uses no Messages quota (count_tokens, models) as it is:
        it needs a key all the same, and counts against the key's rate."""
        needs = COUNT_TOKENS if request.method == "POST" else READ
        try:
            admitted = await self.pipeline.admit(request, needs)
        except Refusal as refusal:
            return _refusal(refusal)
        watch = ClientWatch(request.receive)
        try:
            return await self.relay.passthrough(
                watch, request.method, path, wait_s=self.settings.waits.of(admitted.lane),
                content=admitted.content if request.method == "POST" else None,
                headers=_forwarded(request), query=dict(request.query_params))
        except ClientGone:
            return Response(status_code=CLIENT_CLOSED)
        finally:
            watch.stop()


def _refusal(refusal: Refusal) -> Response:
    return api_error(refusal.status, refusal.error_type, refusal.message,
                     headers=refusal.headers)


def _forwarded(request: Request) -> dict[str, str]:
    """The client's headers to send upstream, with this gateway named in ``laneway-via``."""
    headers = upstream_headers(request.headers.items())
    headers[VIA_HEADER] = via(request.headers.get(VIA_HEADER))
    return headers


def gateway_of(request: Request) -> Gateway:
    gateway: Any = request.app.state.gateway
    assert isinstance(gateway, Gateway)
    return gateway
