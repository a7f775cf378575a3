"""The gateway: the Anthropic API on ``laneway serve``, through laneway's lanes and ledger.

Layout: :mod:`laneway.server.gateway_routes` (the API's routes, mounted by the app) →
:mod:`.service` (one :class:`Gateway` per
app: identify, check, relay, record) → :mod:`.relay` (admission, retries, the stream
relayed byte for byte) → :mod:`.admission` (lanes and wait limits), :mod:`.headers`
(what crosses), :mod:`.loop` (a gateway is never its own upstream), :mod:`.exchange`
(one request's record); a relayed stream is read on the way through by
:mod:`laneway.wire.sse`. Watching it: :mod:`.stats` (the live traffic, in memory) and
:mod:`.metrics` (Prometheus), served by :mod:`laneway.server.traffic_routes`. Message
Batches: :mod:`.batches` (the API's calls) → :mod:`.batch_driver` (each batch a laneway
run, resumed after a restart), :mod:`.batch_plan` (native, realtime or both),
:mod:`.batch_objects` (the API's objects)."""

from laneway.server.gateway.service import Gateway, GatewaySettings

__all__ = ["Gateway", "GatewaySettings"]
