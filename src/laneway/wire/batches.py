"""A Message Batches create body checked as the API checks it: its shape, its size
(100,000 requests; 256 MB is the body limit, checked where the body is read) and the
``custom_id`` rules (``^[a-zA-Z0-9_-]{1,64}$``, unique in the batch).

The requests' ``params`` are not checked here: the API checks them as the batch runs
(a bad one comes back as an ``errored`` result, not a failed create). The local API
and the gateway (``laneway serve``) both use it, so both answer alike.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from laneway.wire.errors import APIError, error_body

if TYPE_CHECKING:
    from starlette.requests import Request

BATCH_MAX_BYTES = 256 * 1024 * 1024
BATCH_MAX_REQUESTS = 100_000
_CUSTOM_ID_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-")


def parse_batch_requests(body: Any) -> list[tuple[str, Any]]:
    """Check a create body's shape, custom_ids and size; ``params`` are checked later."""
    if not isinstance(body, dict) or "requests" not in body:
        raise APIError("invalid_request_error", "requests: Field required")
    requests = body["requests"]
    if not isinstance(requests, list):
        raise APIError("invalid_request_error", "requests: Input should be a valid list")
    if not requests:
        raise APIError("invalid_request_error", "requests: at least one request is required")
    if len(requests) > BATCH_MAX_REQUESTS:
        raise APIError(
            "invalid_request_error",
            f"requests: a batch holds at most {BATCH_MAX_REQUESTS} requests, "
            f"got {len(requests)}",
        )
    seen: set[str] = set()
    out: list[tuple[str, Any]] = []
    for i, item in enumerate(requests):
        if not isinstance(item, dict):
            raise APIError("invalid_request_error",
                           f"requests.{i}: Input should be a valid dictionary or object")
        cid = item.get("custom_id")
        if not isinstance(cid, str):
            raise APIError("invalid_request_error", f"requests.{i}.custom_id: Field required")
        if not 1 <= len(cid) <= 64 or not set(cid) <= _CUSTOM_ID_CHARS:
            raise APIError(
                "invalid_request_error",
                f"requests.{i}.custom_id: String should match pattern "
                f"'^[a-zA-Z0-9_-]{{1,64}}$'",
            )
        if cid in seen:
            raise APIError(
                "invalid_request_error",
                f"requests.{i}.custom_id: duplicate custom_id {cid!r}: "
                "custom_id must be unique within a batch",
            )
        seen.add(cid)
        if "params" not in item:
            raise APIError("invalid_request_error", f"requests.{i}.params: Field required")
        out.append((cid, item["params"]))
    return out


def succeeded(message: dict[str, Any]) -> dict[str, Any]:
    """A batch result of a request answered: its Message."""
    return {"type": "succeeded", "message": message}


def result_line(custom_id: str, result: dict[str, Any]) -> str:
    """One line of a results JSONL (no newline): compact JSON, UTF-8 as it is (not
    ``\\u`` escapes), the one encoder of the local API, the gateway, ``laneway serve``'s
    runs routes and the CLI's results file."""
    return json.dumps({"custom_id": custom_id, "result": result}, ensure_ascii=False,
                      separators=(",", ":"))


def errored(error_type: str, message: str, request_id: str | None = None) -> dict[str, Any]:
    """A batch result of a request refused or failed: the API's error body inside."""
    return {"type": "errored", "error": error_body(error_type, message, request_id)}


__all__ = ["BATCH_MAX_BYTES", "BATCH_MAX_REQUESTS", "errored", "parse_batch_requests",
           "result_line", "succeeded"]


def results_base_url(request: Request, public_url: str | None) -> str:
    """Base of a batch's ``results_url``: the configured public URL, else the address this
    server listens on as the connection arrived at it (the socket's, not the Host
    header's: a proxy's Host would send clients around the proxy)."""
    if public_url:
        return public_url.rstrip("/")
    server = request.scope.get("server")
    if not server or server[1] is None:
        return str(request.base_url).rstrip("/")  # a Unix socket: nothing better
    host, port = server
    host = f"[{host}]" if ":" in host else host
    return f"{request.url.scheme}://{host}:{port}"
