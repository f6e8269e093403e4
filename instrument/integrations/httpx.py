"""httpx (sync and async): one record per request the transport sends.

``HTTPTransport.handle_request`` and ``AsyncHTTPTransport.handle_async_request`` send
one request each (httpx follows redirects by calling them again). The duration ends
when the transport returns the response, after its headers; httpx reads the body
afterwards, so it is not included.
"""

from __future__ import annotations

from collections.abc import Callable
from types import ModuleType
from typing import Any

from .._urls import DEFAULT_PORTS
from . import Integration
from ._http import CLIENT_LIBRARY, begin


def _target(request: Any) -> tuple[str, int]:
    url = request.url
    return url.host, url.port or DEFAULT_PORTS.get(url.scheme, 0)


def _handle(original: Callable[..., Any]) -> Callable[..., Any]:
    def handle_request(self: Any, request: Any) -> Any:
        attempt = begin(request.method, *_target(request), rank=CLIENT_LIBRARY)
        if attempt is None:
            return original(self, request)
        with attempt:
            response = original(self, request)
            attempt.status = response.status_code
        return response

    return handle_request


def _handle_async(original: Callable[..., Any]) -> Callable[..., Any]:
    async def handle_async_request(self: Any, request: Any) -> Any:
        attempt = begin(request.method, *_target(request), rank=CLIENT_LIBRARY)
        if attempt is None:
            return await original(self, request)
        with attempt:
            response = await original(self, request)
            attempt.status = response.status_code
        return response

    return handle_async_request


class HttpxIntegration(Integration):
    identifier = "httpx"
    distribution = "httpx"
    min_version = (0, 20)

    def setup(self, module: ModuleType) -> None:
        self.patch(module.HTTPTransport, "handle_request", _handle)
        self.patch(module.AsyncHTTPTransport, "handle_async_request", _handle_async)
