"""Settings of the native runner, and what it reports."""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

from laneway.errors import ConfigError
from laneway.runners.tally import Tally
from laneway.wire.batches import BATCH_MAX_BYTES, BATCH_MAX_REQUESTS


@dataclass(kw_only=True)
class NativeOptions:
    #: Limits of one batch (the API's: 100,000 requests, 256 MB of request body).
    max_requests: int = BATCH_MAX_REQUESTS
    max_bytes: int = BATCH_MAX_BYTES
    #: Polling backoff: the first wait, its growth per quiet poll, and its ceiling.
    poll_initial_s: float = 1.0
    poll_factor: float = 1.5
    poll_max_s: float = 60.0
    #: An overall progress line at least this often (per-batch changes print at once).
    report_every_s: float = 30.0
    #: Deadline fallback: how long to wait for canceled batches to end, and the margin
    #: kept beyond the estimated realtime time.
    cancel_wait_s: float = 300.0
    fallback_margin_s: float = 60.0
    #: ``submitting`` rows: clock skew allowed when matching ``list``, and how long after
    #: a failed ``create`` to look (the provider may still be taking the request in).
    recover_skew_s: float = 600.0
    recover_after_s: float = 5.0
    #: Results committed per transaction.
    result_group: int = 500
    lease_s: float = 300.0

    @classmethod
    def from_env(cls, **overrides: Any) -> NativeOptions:
        """Defaults, then ``LANEWAY_BATCH_POLL_S`` (``initial[,max]``),
        ``LANEWAY_BATCH_MAX_REQUESTS`` and ``LANEWAY_BATCH_MAX_BYTES``, then ``overrides``."""
        values: dict[str, Any] = {}
        poll = os.environ.get("LANEWAY_BATCH_POLL_S")
        try:
            if poll:
                first, _, most = poll.partition(",")
                values["poll_initial_s"] = float(first)
                if most:
                    values["poll_max_s"] = float(most)
            for name, key in (("LANEWAY_BATCH_MAX_REQUESTS", "max_requests"),
                              ("LANEWAY_BATCH_MAX_BYTES", "max_bytes")):
                if os.environ.get(name):
                    values[key] = int(os.environ[name])
        except ValueError as exc:
            raise ConfigError(f"LANEWAY_BATCH_*: {exc}") from None
        values.update(overrides)
        return cls(**values)


@dataclass
class NativeTally(Tally):
    """A realtime :class:`Tally` plus what only batches have."""

    batches: int = 0
    resubmitted: int = 0
    #: The deadline came near: the batches were canceled and the jobs they did not
    #: finish are ``pending`` again, for the caller to send realtime.
    fallback: bool = False
    #: How many jobs the fallback left for realtime.
    left_for_realtime: int = 0
