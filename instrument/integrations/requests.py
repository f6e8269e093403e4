"""requests: one record per request on the wire (each redirect hop is one).

``HTTPAdapter.send`` sends one request per redirect hop. With the adapter's default
``max_retries`` (no retries) that is one attempt, recorded here with requests' own
exception classes; without ``stream=True`` the duration runs until the body has been
read (when ``Response.content`` is first computed, which requests does before
returning), with ``stream=True`` until the response headers. An adapter mounted with
urllib3 retries may make several attempts per send: then this layer steps aside and
the urllib3 integration records each attempt.
"""

from __future__ import annotations

from collections.abc import Callable
from contextvars import ContextVar
from types import ModuleType
from typing import Any

from .._urls import hostport
from . import Integration
from ._http import CLIENT_LIBRARY, Attempt, begin

_ATTEMPT = "_instrument_attempt"

# Attempts waiting for their body inside the current Session.send: finished when it
# returns or raises, should the body not have been read by then (a response hook that
# raises, raise_for_status among them, or one that replaces the response).
_parked: ContextVar[list[tuple[Attempt, Any]] | None] = ContextVar("instrument.requests_parked", default=None)


def single_attempt(retry: Any) -> bool:
    """Whether a urllib3 ``Retry`` (or int) allows exactly one attempt."""
    if retry is None:
        return False
    if isinstance(retry, int):  # False counts as 0
        return retry <= 0
    total = getattr(retry, "total", None)
    if total is False or (isinstance(total, int) and not isinstance(total, bool) and total <= 0):
        return True
    if total is not None:
        return False
    counters = [getattr(retry, name, None) for name in ("connect", "read", "status", "other")]
    return all(counter is not None and counter is not True and not counter for counter in counters)


def _send(original: Callable[..., Any]) -> Callable[..., Any]:
    def send(self: Any, request: Any, stream: bool = False, *args: Any, **kwargs: Any) -> Any:
        attempt = None
        if single_attempt(getattr(self, "max_retries", None)):
            host, port = hostport(str(request.url))
            attempt = begin(request.method, host, port, rank=CLIENT_LIBRARY)
        if attempt is None:
            return original(self, request, stream, *args, **kwargs)
        with attempt:
            response = original(self, request, stream, *args, **kwargs)
            attempt.status = response.status_code
            if not stream:  # finished when the body has been read
                attempt.finish_later()
                response.__dict__[_ATTEMPT] = attempt
                parked = _parked.get()
                if parked is not None:
                    parked.append((attempt, response))
        return response

    return send


def _session_send(original: Callable[..., Any]) -> Callable[..., Any]:
    def send(self: Any, request: Any, **kwargs: Any) -> Any:
        parked: list[tuple[Attempt, Any]] = []
        token = _parked.set(parked)
        try:
            return original(self, request, **kwargs)
        finally:
            _parked.reset(token)
            for attempt, response in parked:
                if not attempt.done:
                    response.__dict__.pop(_ATTEMPT, None)
                    attempt.finish(status=response.status_code)

    return send


def _content(original: property) -> property:
    getter = original.fget
    assert getter is not None

    def content(self: Any) -> Any:
        attempt: Attempt | None = self.__dict__.pop(_ATTEMPT, None)
        if attempt is None:
            return getter(self)
        try:
            body = getter(self)
        except BaseException as exc:
            attempt.finish(exc=exc)
            raise
        attempt.finish(status=self.status_code)
        return body

    return property(content, original.fset, original.fdel, original.__doc__)


class RequestsIntegration(Integration):
    identifier = "requests"
    distribution = "requests"
    min_version = (2, 21)

    def setup(self, module: ModuleType) -> None:
        from requests import adapters, models, sessions

        self.patch(adapters.HTTPAdapter, "send", _send)
        self.patch(sessions.Session, "send", _session_send)
        self.patch(models.Response, "content", _content)
