"""The one status → outcome table (:mod:`laneway.wire.status`) covers every status the
installed SDK can raise, as httpx's exception map is tested: each public exception class
of ``anthropic`` that carries a ``status_code`` is looked up, built as the SDK builds it
(with the API's error body, and for 502/503/504 also without one, as a proxy answers),
and what every user of the table does with it must agree: the provider's exception
(retryable or not, "no answer" or not), the governor's outcome, the gateway relay's
decision to try again, and the SDK's own retry rule (408, 409, 429, >= 500)."""

from __future__ import annotations

import inspect
import time
from typing import Any

import anthropic
import pytest

from laneway.errors import RateLimitedError, RetryableError
from laneway.governor.core import outcome_of
from laneway.provider.client import map_error
from laneway.runners.api_wait import no_answer
from laneway.server.gateway.relay import _Tries
from laneway.wire.status import BY_STATUS, PROXY_STATUSES, STATUS_OF, Kind, outcome, type_outcome

try:  # the transport the SDK builds its responses with (httpx2 since 2.x, else httpx)
    import httpx2 as transport  # type: ignore[import-not-found,unused-ignore]
except ImportError:  # pragma: no cover
    import httpx as transport  # type: ignore[no-redef,unused-ignore]


def _sdk_status_classes() -> dict[int, list[type[anthropic.APIStatusError]]]:
    out: dict[int, list[type[anthropic.APIStatusError]]] = {500: [anthropic.InternalServerError]}
    for name in dir(anthropic):
        cls = getattr(anthropic, name)
        if inspect.isclass(cls) and issubclass(cls, anthropic.APIStatusError):
            status = cls.__dict__.get("status_code", getattr(cls, "status_code", None))
            if isinstance(status, int):
                out.setdefault(status, []).append(cls)
    return out


SDK = _sdk_status_classes()


def test_every_status_the_sdk_raises_is_in_the_table() -> None:
    assert len(SDK) >= 15  # the SDK 2.17 names 19 statuses (and 500 for the rest)
    missing = sorted(set(SDK) - set(BY_STATUS))
    assert not missing, f"statuses the SDK raises that wire.status does not list: {missing}"


def _error(status: int, error_type: str | None) -> anthropic.APIStatusError:
    cls = SDK.get(status, [anthropic.InternalServerError])[0]  # 502: the SDK's 5xx class
    body: Any = None if error_type is None else {
        "type": "error", "error": {"type": error_type, "message": "m"}, "request_id": "req_1"}
    request = transport.Request("POST", "https://api.anthropic.com/v1/messages")
    response = transport.Response(status, request=request, json=body,
                                  headers={"retry-after": "1"} if status == 429 else {})
    return cls("m", response=response, body=body)


def _sdk_retries(status: int) -> bool:
    """The SDK's own rule (2.x ``_should_retry``, ANTHROPIC_API.md)."""
    return status in (408, 409, 429) or status >= 500


_TYPES = {s: t for t, s in STATUS_OF.items()}
CASES: list[tuple[int, str | None]] = [
    (status, _TYPES.get(status, "api_error" if status >= 500 else "invalid_request_error"))
    for status in sorted(set(SDK) | PROXY_STATUSES)]
CASES += [(status, None) for status in sorted(PROXY_STATUSES)]


@pytest.mark.parametrize(("status", "error_type"), CASES,
                         ids=[f"{s}-{t or 'no-api-body'}" for s, t in CASES])
def test_each_user_of_the_table_agrees(status: int, error_type: str | None) -> None:
    answer = outcome(status, error_type)
    assert answer.retry == _sdk_retries(status)
    err = map_error(_error(status, error_type))
    # The provider: retryable exactly when the table says so; no answer when a proxy said.
    assert isinstance(err, RetryableError) == answer.retry, (status, err)
    assert no_answer(err) == (answer.kind is Kind.UNREACHABLE), (status, err)
    assert isinstance(err, RateLimitedError) == (answer.kind is Kind.RATE_LIMITED)
    # An attempt is used by every retry but a 429's and an outage's.
    assert answer.attempt == (answer.retry and not isinstance(err, RateLimitedError)
                              and not no_answer(err))
    # The governor's outcome, from the exception and from the table alike.
    assert outcome_of(err) == answer.governor
    # The gateway's relay tries again exactly when the table says so.
    tries = _Tries(deadline=time.monotonic() + 600)
    assert (tries.after_answer(answer, {}) is not None) == answer.retry


def test_409_is_retried_everywhere() -> None:
    """The copies disagreed (the provider retried 409, the relay did not): the SDK
    retries it (a conflict is transient at the API), so laneway does."""
    assert outcome(409, "api_error").retry and outcome(409, "api_error").attempt


@pytest.mark.parametrize(("error_type", "retry"), [
    ("api_error", True), ("overloaded_error", True), ("rate_limit_error", True),
    ("timeout_error", True), ("invalid_request_error", False), ("not_found_error", False),
    ("request_too_large", False), ("permission_error", False), ("billing_error", False),
    ("something_new", False)])
def test_an_errored_batch_result_by_its_type(error_type: str, retry: bool) -> None:
    assert type_outcome(error_type).retry == retry
