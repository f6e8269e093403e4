"""aiohttp's client: every attempt a ``ClientSession`` makes, measured once (see `_http`).

An attempt runs from taking a connection for the request (``BaseConnector.connect``: one
from the pool, or a new one, DNS and TLS included) until the response's status line and
headers have arrived (``ClientResponse.start``); the body is read by the program later.
Each redirect hop and each retry is an attempt of its own, as with requests. The three
steps run one after the other in the task that makes the request, so the attempt in
progress is kept in a context variable between them. aiohttp uses none of the other
HTTP client libraries, so nothing below it records the attempt again.

Objects keep their types: methods of aiohttp's classes are replaced, in the class, by
wrappers that pass every argument and return or raise what the original does.
"""

from __future__ import annotations

from collections.abc import Callable
from contextvars import ContextVar
from importlib import import_module
from types import ModuleType
from typing import Any

from . import Integration
from ._http import CLIENT_LIBRARY, Attempt, begin

# The attempt begun by `connect` and not yet ended, in this task.
_attempt: ContextVar[Attempt | None] = ContextVar("instrument.aiohttp_attempt", default=None)
# Set while a connection is being made: a proxy's CONNECT request sent from inside is not an attempt.
_connecting: ContextVar[bool] = ContextVar("instrument.aiohttp_connecting", default=False)


def _connect(original: Callable[..., Any]) -> Callable[..., Any]:
    async def connect(self: Any, req: Any, *args: Any, **kwargs: Any) -> Any:
        if _connecting.get():  # a connector subclass calling super().connect()
            return await original(self, req, *args, **kwargs)
        _attempt.set(None)  # one never ended (a request given up between the steps) is dropped
        url = req.url
        attempt = begin(req.method, url.host, url.port, rank=CLIENT_LIBRARY, own=False)
        if attempt is None:
            return await original(self, req, *args, **kwargs)
        token = _connecting.set(True)
        try:
            connection = await original(self, req, *args, **kwargs)
        except BaseException as exc:
            attempt.finish(None, exc)
            raise
        finally:
            _connecting.reset(token)
        _attempt.set(attempt)
        return connection

    return connect


def _end(attempt: Attempt, status: int | None, exc: BaseException | None) -> None:
    _attempt.set(None)
    attempt.finish(status, exc)


def _send(original: Callable[..., Any]) -> Callable[..., Any]:
    async def send(self: Any, *args: Any, **kwargs: Any) -> Any:
        try:
            return await original(self, *args, **kwargs)
        except BaseException as exc:
            attempt = _attempt.get()
            if attempt is not None:
                _end(attempt, None, exc)
            raise

    return send


def _start(original: Callable[..., Any]) -> Callable[..., Any]:
    async def start(self: Any, *args: Any, **kwargs: Any) -> Any:
        attempt = _attempt.get()
        if attempt is None:
            return await original(self, *args, **kwargs)
        try:
            result = await original(self, *args, **kwargs)
        except BaseException as exc:
            _end(attempt, None, exc)
            raise
        _end(attempt, self.status, None)
        return result

    return start


class AiohttpClientIntegration(Integration):
    identifier = "aiohttp_client"
    distribution = "aiohttp"
    min_version = (3, 8, 3)

    def setup(self, module: ModuleType) -> None:  # aiohttp.client
        self.patch(import_module("aiohttp.connector").BaseConnector, "connect", _connect)
        reqrep = import_module("aiohttp.client_reqrep")
        self.patch(reqrep.ClientRequest, "send", _send)
        self.patch(reqrep.ClientResponse, "start", _start)
