"""The gateway: the Anthropic API on ``laneway serve``, in front of the upstream.

``POST /v1/messages`` goes through the governor in a lane and is relayed (see
:mod:`.relay`); ``count_tokens`` and ``GET /v1/models`` are relayed as they are (they
do not use the Messages rate limits). Every request is identified by its client key
(:mod:`.clients`), checked against the key's budget and rate, and recorded when its
answer is complete (:mod:`.accounting`).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from fastapi import Request
from fastapi.responses import JSONResponse, Response

from laneway import estimate, provider_relay
from laneway.errors import ProviderError
from laneway.server.gateway.admission import (
    LANE_HEADER,
    BadLane,
    ClientGone,
    ClientWatch,
    WaitedTooLong,
    WaitLimits,
    choose_lane,
)
from laneway.server.gateway.exchange import Exchange
from laneway.server.gateway.headers import client_headers, upstream_headers
from laneway.server.gateway.relay import Relay

if TYPE_CHECKING:
    from laneway.agent import HybridAgent

#: What nginx logs for a client that closed its connection before the answer.
CLIENT_CLOSED = 499


def api_error(status: int, error_type: str, message: str,
              headers: dict[str, str] | None = None) -> JSONResponse:
    """An error answer in the API's own shape."""
    return JSONResponse({"type": "error", "error": {"type": error_type, "message": message}},
                        status_code=status, headers=headers)


@dataclass(frozen=True, slots=True)
class GatewaySettings:
    waits: WaitLimits = field(default_factory=WaitLimits)
    #: How long one upstream request may take (the SDKs' own default is 10 minutes).
    upstream_timeout_s: float = 600.0


class Gateway:
    def __init__(self, agent: HybridAgent, settings: GatewaySettings | None = None) -> None:
        self.agent = agent
        self.settings = settings or GatewaySettings()
        #: Called with every finished request (the ledger's recorder, the metrics).
        self.observers: list[Callable[[Exchange], None]] = []
        self._relay: Relay | None = None

    @property
    def relay(self) -> Relay:
        if self._relay is None:  # the agent's provider exists once the app has started
            self._relay = Relay(self.agent.governor, self.agent.provider,
                                self.settings.waits, self.finish,
                                self.settings.upstream_timeout_s)
        return self._relay

    def finish(self, ex: Exchange) -> None:
        for observe in self.observers:
            observe(ex)

    async def messages(self, request: Request) -> Response:
        content = await request.body()
        try:
            body = json.loads(content)
        except ValueError:
            return api_error(400, "invalid_request_error", "the body is not valid JSON")
        if not isinstance(body, dict):
            return api_error(400, "invalid_request_error", "the body must be a JSON object")
        streamed = body.get("stream") is True
        try:
            lane = choose_lane(streamed=streamed, header=request.headers.get(LANE_HEADER),
                               key_lane=None)
        except BadLane as exc:
            return api_error(400, "invalid_request_error", str(exc))
        max_tokens = body.get("max_tokens")
        ex = Exchange(model=str(body.get("model") or ""), lane=lane, streamed=streamed)
        watch = ClientWatch(request.receive)
        try:
            return await self.relay.messages(
                ex, watch, content, upstream_headers(request.headers.items()),
                input_tokens=estimate.input_tokens(body),
                max_tokens=max_tokens if isinstance(max_tokens, int) and max_tokens > 0 else 1,
                query=dict(request.query_params))
        except ClientGone:
            ex.end(CLIENT_CLOSED, local=self.agent.provider.is_local)
            self.finish(ex)
            return Response(status_code=CLIENT_CLOSED)
        except WaitedTooLong as exc:
            return self._refuse(ex, 429, "rate_limit_error",
                                f"the {lane} lane's quota is spent: laneway waited "
                                f"{self.settings.waits.of(lane):.0f} s for it",
                                {"retry-after": str(int(exc.retry_after_s))})
        except ProviderError as exc:
            return self._refuse(ex, 529 if exc.status == 529 else 502, "api_error",
                                f"the upstream did not answer: {exc.message}")
        finally:
            watch.stop()

    def _refuse(self, ex: Exchange, status: int, error_type: str, message: str,
                headers: dict[str, str] | None = None) -> Response:
        ex.end(status, local=self.agent.provider.is_local)
        self.finish(ex)
        return api_error(status, error_type, message, headers)

    async def passthrough(self, request: Request, path: str) -> Response:
        """Relay a request that uses no Messages quota (count_tokens, models) as it is."""
        content = await request.body() if request.method == "POST" else None
        try:
            response = await provider_relay.send(
                self.agent.provider, request.method, path, content=content,
                headers=upstream_headers(request.headers.items()),
                query=dict(request.query_params), timeout_s=60.0)
        except ProviderError as exc:
            return api_error(502, "api_error", f"the upstream did not answer: {exc.message}")
        body = await response.aread()
        return Response(body, status_code=response.status_code,
                        headers=client_headers(response.headers))


def gateway_of(request: Request) -> Gateway:
    gateway: Any = request.app.state.gateway
    assert isinstance(gateway, Gateway)
    return gateway
