"""``laneway local --engine echo`` for the benchmarks, plus ``GET /v1/laneway/stats``.

The same app ``laneway local`` serves, with one more route: the server's own counters
(requests, ok, rate_limited, faults) and
the levels of its rate-limit buckets, so a benchmark can count the 429s the upstream
sent to a client it cannot see (the gateway); ``POST /v1/laneway/drain`` empties the
buckets (a drained account from that moment, whatever the gateway took to start);
``GET /v1/laneway/answered``: each request content answered in full and how many times,
and the Message Batches made.

    python bench/_upstream.py --port 8001 [--ttft-ms 300 --token-ms 10 --rpm 600 ...]
        [--drained]

``POST /v1/laneway/drain`` empties the buckets again (``--drained`` at start-up is
refilled by however long the processes after it take to start).
"""

from __future__ import annotations

import argparse
from typing import Any

import uvicorn

from laneway.local.app import LocalAPI, create_app
from laneway.local.config import LocalConfig


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--ttft-ms", type=float, default=0.0)
    ap.add_argument("--token-ms", type=float, default=0.0)
    ap.add_argument("--rpm", type=int)
    ap.add_argument("--itpm", type=int)
    ap.add_argument("--otpm", type=int)
    ap.add_argument("--drained", action="store_true",
                    help="start with every bucket empty (an account at its limit)")
    args = ap.parse_args()
    app = create_app(LocalConfig(engine="echo", ttft_ms=args.ttft_ms, token_ms=args.token_ms,
                                 rpm=args.rpm, itpm=args.itpm, otpm=args.otpm))
    api: LocalAPI = app.state.local

    def drain() -> None:
        for bucket in (api.limits.requests, api.limits.input, api.limits.output):
            if bucket is not None:
                bucket.refill(api.limits.clock())
                bucket.level = 0.0

    if args.drained:
        drain()

    @app.post("/v1/laneway/drain")
    async def drain_now() -> dict[str, Any]:
        """Empty every bucket now (a client about to start: its start-up refilled them)."""
        drain()
        return {}

    @app.post("/v1/laneway/drain")
    async def drain() -> dict[str, bool]:
        """Every bucket empty now (an account at its limit from this moment)."""
        for bucket in (api.limits.requests, api.limits.input, api.limits.output):
            if bucket is not None:
                bucket.refill(api.limits.clock())
                bucket.level = 0.0
        return {"drained": True}

    @app.get("/v1/laneway/stats")
    async def stats() -> dict[str, Any]:
        levels = {}
        for name, bucket in (("requests", api.limits.requests), ("input", api.limits.input),
                             ("output", api.limits.output)):
            if bucket is not None:
                bucket.refill(api.limits.clock())
                levels[name] = bucket.level
        return {**api.stats, **api.completions.as_json(), "levels": levels}

    @app.get("/v1/laneway/answered")
    async def answered() -> dict[str, Any]:
        """Each request content answered in full, with how many times (a benchmark finds
        what was paid twice, and what was answered but never recorded), and the Message
        Batches made here."""
        return {"answered": dict(api.completions.answered),
                "batches": [{"id": b.id, "requests": len(b.requests), "status": b.status}
                            for b in api.batches.listing(limit=1000, after_id=None,
                                                         before_id=None)[0]]}

    uvicorn.run(app, host="127.0.0.1", port=args.port, log_level="warning", access_log=False)


if __name__ == "__main__":
    main()
