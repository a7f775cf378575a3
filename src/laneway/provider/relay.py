"""Raw requests through the provider's SDK client: bytes in, the upstream's answer out.

Part of the provider (:mod:`laneway.provider.client`), for the gateway: a client's request body
is sent as it came (unknown fields and all) with the SDK's client, its retries off, and
the upstream's answer comes back unread, status, headers and body as the upstream sent
them, so the gateway can relay a stream event by event. An error status is an answer
too (the SDK's exception carries the read response); only a request that got no answer
(connection refused or dropped, timed out) raises, as a
:class:`~laneway.errors.ProviderError`.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from typing import Any, Protocol

import anthropic

from laneway.provider.client import Provider, request_timeout, sdk_errors

#: The SDK's own switch for "give me the response unread" (what
#: ``with_streaming_response`` sets): the body is not read before we return.
_RAW_HEADER = "X-Stainless-Raw-Response"


class RawResponse(Protocol):
    """The parts of the SDK's HTTP response the gateway uses."""

    @property
    def status_code(self) -> int: ...

    @property
    def headers(self) -> Mapping[str, str]: ...

    def aiter_bytes(self) -> AsyncIterator[bytes]: ...

    def aiter_raw(self) -> AsyncIterator[bytes]: ...

    async def aread(self) -> bytes: ...

    async def aclose(self) -> None: ...


def _response_class() -> type[Any]:
    for name in ("httpx2", "httpx"):
        try:
            module = __import__(name)
        except ImportError:
            continue
        response: type[Any] = module.Response
        return response
    raise ImportError("the anthropic SDK's HTTP library (httpx2 or httpx) is missing")


_RESPONSE = _response_class()


async def send(
    provider: Provider, method: str, path: str, *, content: bytes | None = None,
    headers: Mapping[str, str] | None = None, query: Mapping[str, str] | None = None,
    timeout_s: float = 600.0,
) -> RawResponse:
    """Send one request upstream and return its response unread (any status).

    ``headers`` are the client's, already filtered (the SDK adds the upstream key). The
    caller must ``aclose()`` the response, or read it whole with ``aread()``.
    """
    options: dict[str, Any] = {"headers": {**(headers or {}), _RAW_HEADER: "stream"},
                               "timeout": request_timeout(timeout_s)}
    if query:
        options["params"] = dict(query)
    client: Any = provider.client  # its request options are a private TypedDict
    with sdk_errors():
        try:
            if method == "GET":
                response = await client.get(path, cast_to=_RESPONSE, options=options)
            else:
                response = await client.post(path, cast_to=_RESPONSE, content=content,
                                             options=options)
        except anthropic.APIStatusError as exc:  # an answer, with its body read
            answer: RawResponse = exc.response
            return answer
    relayed: RawResponse = response
    return relayed


async def read(response: RawResponse) -> bytes:
    """``response``'s whole body. An upstream that drops the connection before the end
    gave no answer: :class:`~laneway.errors.ProviderError`, as :func:`send` raises. The
    response is closed if the read does not finish (cancelled too)."""
    try:
        with sdk_errors():
            return await response.aread()
    except BaseException:
        await response.aclose()
        raise
