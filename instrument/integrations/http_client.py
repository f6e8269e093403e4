"""The standard library's `http.client` (and so `urllib.request`): one record per request.

An attempt starts at ``putrequest`` (which ``request()`` calls) and ends when
``getresponse`` has read the status line and headers; the body is the caller's to
read and is not included. A failure while sending (``endheaders``, which connects)
or while waiting for the response is recorded with its exception class. The state
of the attempt lives on the connection object between those calls.
"""

from __future__ import annotations

from collections.abc import Callable
from types import ModuleType
from typing import Any

from . import Integration
from ._http import HTTP_CLIENT, Attempt, begin

_ATTEMPT = "_instrument_attempt"


def _fail(conn: Any, exc: BaseException) -> None:
    attempt: Attempt | None = conn.__dict__.pop(_ATTEMPT, None)
    if attempt is not None:
        attempt.finish(exc=exc)


def _putrequest(original: Callable[..., Any]) -> Callable[..., Any]:
    def putrequest(self: Any, method: str, url: str, *args: Any, **kwargs: Any) -> Any:
        # Only urllib3's connections carry attempts that requests/urllib3 own; a plain
        # http.client connection (urllib.request's) is its own attempt even when made
        # during one of theirs (from a signal or logging handler, say).
        independent = not type(self).__module__.startswith("urllib3")
        host, port = self._tunnel_host or self.host, self._tunnel_port or self.port
        attempt = begin(method, host, port, rank=HTTP_CLIENT, own=False, independent=independent)
        if attempt is not None:
            self.__dict__[_ATTEMPT] = attempt
        try:
            return original(self, method, url, *args, **kwargs)
        except BaseException as exc:
            _fail(self, exc)
            raise

    return putrequest


def _endheaders(original: Callable[..., Any]) -> Callable[..., Any]:
    def endheaders(self: Any, *args: Any, **kwargs: Any) -> Any:
        try:
            return original(self, *args, **kwargs)
        except BaseException as exc:
            _fail(self, exc)
            raise

    return endheaders


def _getresponse(original: Callable[..., Any]) -> Callable[..., Any]:
    def getresponse(self: Any, *args: Any, **kwargs: Any) -> Any:
        try:
            response = original(self, *args, **kwargs)
        except BaseException as exc:
            _fail(self, exc)
            raise
        attempt: Attempt | None = self.__dict__.pop(_ATTEMPT, None)
        if attempt is not None:
            attempt.finish(status=getattr(response, "status", None))
        return response

    return getresponse


class HttpClientIntegration(Integration):
    identifier = "http_client"

    def setup(self, module: ModuleType) -> None:
        connection = module.HTTPConnection
        self.patch(connection, "putrequest", _putrequest)
        self.patch(connection, "endheaders", _endheaders)
        self.patch(connection, "getresponse", _getresponse)
