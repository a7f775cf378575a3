"""``GET /metrics``: the gateway's traffic and the governor's state for Prometheus.

Counters and histograms are fed by the gateway's observers (one finished request at a
time); the queue, the requests in flight and the buckets' fill are read from the
governor when Prometheus scrapes. Each app has its own registry (never the process-wide
one), so two servers in one process do not mix their numbers.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Histogram
from prometheus_client import generate_latest as _generate_latest
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from laneway.governor.core import Governor
from laneway.server.gateway.exchange import Exchange
from laneway.server.gateway.stats import lane_queue

_BY_KEY = ("key", "model", "lane")
#: Seconds waited for the governor: from none at all to the background lane's 5 minutes.
QUEUE_BUCKETS = (0.001, 0.005, 0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
                 60.0, 120.0, 300.0)
TTFT_BUCKETS = (0.05, 0.1, 0.25, 0.5, 0.75, 1.0, 1.5, 2.0, 3.0, 5.0, 10.0, 20.0, 60.0)
_TOKEN_KINDS = (("input", "input_tokens"), ("output", "output_tokens"),
                ("cache_creation", "cache_creation_input_tokens"),
                ("cache_read", "cache_read_input_tokens"))


class _GovernorCollector(Collector):
    """The gauges, read from the governor at each scrape."""

    def __init__(self, governor: Callable[[], Governor]) -> None:
        self._governor = governor

    def collect(self) -> Iterable[Metric]:
        governor = self._governor()
        depth = GaugeMetricFamily("laneway_gateway_queue_depth",
                                  "Requests waiting for the governor, per lane.",
                                  labels=["lane"])
        flight = GaugeMetricFamily("laneway_gateway_in_flight",
                                   "Requests sent upstream and not yet answered, per lane.",
                                   labels=["lane"])
        for lane, counts in lane_queue(governor).items():
            depth.add_metric([lane], counts["waiting"])
            flight.add_metric([lane], counts["in_flight"])
        fill = GaugeMetricFamily("laneway_governor_bucket_fill",
                                 "How full each rate-limit bucket is (level / this "
                                 "process's share of the limit): 1 = all of the minute's "
                                 "quota free, 0 or less = spent.",
                                 labels=["model", "kind"])
        for model, st in governor.snapshot().items():
            for kind, bucket in st["buckets"].items():
                held = bucket["limit"] * bucket.get("share", 1.0)
                if held:
                    fill.add_metric([model, kind], bucket["level"] / held)
        return [depth, flight, fill]


class GatewayMetrics:
    """One app's metrics: register :meth:`observe` as a gateway observer."""

    content_type = CONTENT_TYPE_LATEST

    def __init__(self, governor: Callable[[], Governor]) -> None:
        self.registry = CollectorRegistry()
        reg = self.registry
        self.requests = Counter("laneway_gateway_requests", "Requests answered by the "
                                "gateway, by client key, model, lane and status.",
                                [*_BY_KEY, "status"], registry=reg)
        self.tokens = Counter("laneway_gateway_tokens", "Tokens used, by kind: input, "
                              "output, cache_creation, cache_read.", [*_BY_KEY, "kind"],
                              registry=reg)
        self.cost = Counter("laneway_gateway_cost_usd", "What the requests cost, in US "
                            "dollars (requests on a model with no known price left out).",
                            _BY_KEY, registry=reg)
        self.unidentified = Counter("laneway_gateway_refused_unidentified", "Requests "
                                    "refused before their client key was known (no key, "
                                    "an unknown or revoked one, a loop): no ledger row.",
                                    ["status"], registry=reg)
        self.upstream_errors = Counter("laneway_gateway_upstream_errors", "Upstream "
                                       "errors the gateway absorbed by trying again.",
                                       _BY_KEY, registry=reg)
        self.queue = Histogram("laneway_gateway_queue_seconds", "Time a request waited "
                               "for the governor.", ["lane"], buckets=QUEUE_BUCKETS,
                               registry=reg)
        self.ttft = Histogram("laneway_gateway_ttft_seconds", "Time to the first token "
                              "(to the whole answer, when not streamed).", ["lane"],
                              buckets=TTFT_BUCKETS, registry=reg)
        reg.register(_GovernorCollector(governor))

    def observe(self, ex: Exchange) -> None:
        labels = (ex.key_name, ex.model, ex.lane.value)
        self.requests.labels(*labels, str(ex.status)).inc()
        usage = ex.tokens
        for kind, attr in _TOKEN_KINDS:  # zeros too: every series exists from the start
            self.tokens.labels(*labels, kind).inc(getattr(usage, attr))
        if ex.cost_usd is not None:
            self.cost.labels(*labels).inc(ex.cost_usd)
        self.upstream_errors.labels(*labels).inc(ex.upstream_errors)
        self.queue.labels(ex.lane.value).observe(ex.queued_s)
        if ex.ttft_s is not None:
            self.ttft.labels(ex.lane.value).observe(ex.ttft_s)

    def refused(self, status: int) -> None:
        self.unidentified.labels(str(status)).inc()

    def render(self) -> bytes:
        """The text exposition format."""
        return _generate_latest(self.registry)
