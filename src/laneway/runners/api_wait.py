"""Whether the API is answering, and what a run does while it is not.

An error that came with no answer from the API (the connection failed or dropped, the
request timed out, a stream stalled, a gateway's 5xx without the API's error body) says
nothing about the request: it does not use up the job's attempts. One such error alone
is usual (a dropped connection); a second with no answer of any kind in between means
the API is unreachable: the background lane pauses 1, 2, 4, 8, 8, ... s between tries,
and once ``wait_s`` seconds have passed without any answer the run stops, its jobs
left pending for the next run (nothing is recorded as failed: the API never saw them).

Only an answer can make a job's failure final, and only one that blames the request
(400, 404, 413, ...). An answer that refuses the key (401, 403) stops the run at once:
every other request would be refused the same way.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

from laneway.errors import (
    AuthenticationError,
    ConnectionLostError,
    ProviderError,
    ProviderTimeoutError,
    StalledError,
)

#: ``Tally.stop_reason`` values set here.
UNREACHABLE = "api_unreachable"
AUTH = "auth"


def no_answer(err: ProviderError) -> bool:
    """True when the API gave no answer (a 408 is an answer: the server said so)."""
    if isinstance(err, ProviderTimeoutError):
        return err.status is None
    return isinstance(err, ConnectionLostError | StalledError)


def refused_key(err: ProviderError) -> bool:
    return isinstance(err, AuthenticationError)


def auth_message(base_url: str, err: ProviderError) -> str:
    return (f"the API at {base_url} refused the key ({err.status} {err.error_type}: "
            f"{err.message}); jobs stay pending: fix ANTHROPIC_API_KEY and run the same "
            "command again")


@dataclass(kw_only=True)
class ApiWait:
    """The current stretch of errors with no answer, and the lane pause it calls for."""

    #: Stop after this long without any answer (``--wait-for-api``).
    wait_s: float = 30.0
    base_s: float = 1.0
    cap_s: float = 8.0
    clock: Callable[[], float] = field(default=time.monotonic, repr=False)
    #: When the first unanswered error of the current stretch came (None: answering).
    since: float | None = None
    last_error: str = ""
    _paused_until: float = 0.0
    _pauses: int = 0

    def answered(self) -> None:
        """Any answer, even an error status: the API is reachable."""
        self.since = None
        self._pauses = 0
        self._paused_until = 0.0

    def unanswered(self, err: ProviderError) -> float | None:
        """Note an error with no answer; returns the seconds to pause the lane, if any.

        Requests already in flight when a pause began fail without lengthening it.
        """
        now = self.clock()
        self.last_error = err.message
        if self.since is None:
            self.since = now
            return None
        if now < self._paused_until:
            return None
        pause_s = min(self.cap_s, self.base_s * 2.0 ** self._pauses)
        self._pauses += 1
        self._paused_until = now + pause_s
        return pause_s

    @property
    def given_up(self) -> bool:
        return self.since is not None and self.clock() - self.since >= self.wait_s

    def message(self, base_url: str) -> str:
        return (f"the API at {base_url} has not answered for {self.wait_s:g} s: "
                f"{self.last_error}; jobs stay pending, run the same command again")
