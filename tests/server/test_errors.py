"""The status table: each LanewayError answers with its own status and the one error body,
through the real app's exception handlers (a route that raises, added to the real app)."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI

from laneway import errors as E
from laneway.server import ServerSettings, create_app
from laneway.server.errors import STATUS, status_of

CASES: list[tuple[Exception, int, str, dict[str, str]]] = [
    (E.RateLimitedError("slow down", retry_after_s=2.5), 429, "rate_limit_error",
     {"retry-after": "3"}),
    (E.RateLimitedError("slow down"), 429, "rate_limit_error", {}),
    (E.AuthenticationError("bad key", status=401), 401, "authentication_error", {}),
    (E.AuthenticationError("not allowed", status=403), 403, "permission_error", {}),
    (E.RequestError("bad params", status=400), 400, "invalid_request_error", {}),
    (E.InputError("not JSON", line=3), 400, "invalid_request_error", {}),
    (E.ConfigError("--rpm: not a number"), 400, "invalid_request_error", {}),
    (E.UnknownModelError("claude-x"), 400, "invalid_request_error", {}),
    (E.BudgetExceededError(budget_usd=1.0, spent_usd=1.0), 400, "invalid_request_error", {}),
    (E.RunNotFoundError("no run 'x'"), 404, "not_found_error", {}),
    (E.RunMismatchError("run 'x' has other input"), 409, "conflict_error", {}),
    (E.DiskFullError("/var"), 507, "storage_error", {}),
    (E.StoreError("the database is unreachable"), 503, "api_error", {}),
    (E.OverloadedError("Overloaded", status=529), 503, "overloaded_error", {}),
    (E.ServerError("boom", status=500), 503, "api_error", {}),
    (E.ConnectionLostError("refused"), 503, "connection_error", {}),
    (E.ProviderTimeoutError("timed out"), 503, "timeout_error", {}),
    (E.ProviderError("odd answer", status=302), 502, "api_error", {}),
]


@pytest.fixture
def app(tmp_path: Path) -> Iterator[FastAPI]:
    app = create_app(ServerSettings(db=tmp_path / "l.db"), provider=None)
    raising: dict[str, BaseException] = {}
    app.state.raising = raising

    @app.get("/test/raise")
    async def _raise() -> None:
        raise raising["exc"]

    yield app


def call(app: FastAPI, path: str, exc: BaseException | None = None) -> httpx.Response:
    if exc is not None:
        app.state.raising["exc"] = exc
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)

    async def get() -> httpx.Response:
        async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1") as c:
            return await c.get(path)

    return asyncio.run(get())


@pytest.mark.parametrize(("exc", "status", "error_type", "headers"), CASES,
                         ids=[f"{type(c[0]).__name__}-{c[1]}" for c in CASES])
def test_each_error_has_its_status_and_the_one_body(
        app: FastAPI, exc: Exception, status: int, error_type: str,
        headers: dict[str, str]) -> None:
    r = call(app, "/test/raise", exc)
    assert r.status_code == status
    assert r.json() == {"type": "error",
                        "error": {"type": error_type, "message": r.json()["error"]["message"]},
                        "request_id": r.headers["request-id"]}
    assert r.json()["error"]["message"] in (str(exc), getattr(exc, "message", None))
    for name, value in headers.items():
        assert r.headers[name] == value
    if not headers:
        assert "retry-after" not in r.headers


def test_a_bug_is_a_500_that_tells_nothing(app: FastAPI) -> None:
    r = call(app, "/test/raise", RuntimeError("secret at /home/x"))
    assert r.status_code == 500
    assert r.json() == {"type": "error", "error": {"type": "api_error",
                                                   "message": "internal error in laneway serve"},
                        "request_id": r.headers["request-id"]}


def test_an_unknown_path_is_the_apis_404(app: FastAPI) -> None:
    """As the local API (and the API) answer it: an SDK's call of an API laneway does
    not serve gets the same answer through the gateway as straight."""
    r = call(app, "/v1/nothing-here")
    assert r.status_code == 404
    body = r.json()
    assert body == {"type": "error", "error": {"type": "not_found_error",
                                               "message": "Not found: /v1/nothing-here"},
                    "request_id": r.headers["request-id"]}


def _subclasses(cls: type[E.LanewayError]) -> Iterator[type[E.LanewayError]]:
    for sub in cls.__subclasses__():
        yield sub
        yield from _subclasses(sub)


def test_every_laneway_error_is_listed_not_left_to_the_default() -> None:
    listed = set(STATUS) - {E.LanewayError}
    for cls in _subclasses(E.LanewayError):
        if cls.__module__ != "laneway.errors":
            continue
        assert any(c in listed for c in cls.__mro__), f"{cls.__name__} is not in STATUS"
    assert status_of(E.RateLimitedError("x")) == 429
