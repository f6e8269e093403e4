"""One request being measured: what the server was told, its tags, and its one record.

A `Request` is created as the application is called and recorded once (`finish`),
whichever of the response's ends comes first: ``close()``, an exception, or the
collection of a response the server dropped. It counts itself among the active
requests (`_active`) and lives in the environ under `KEY` so that inner layers and
framework hooks find it (`current`).

What a stopping process needs from the requests in progress is here too:

* A flush on SIGTERM (`_signals`) waits, within ``exit_timeout``, for the requests whose
  response has started to go out (`requests_sending`): their client may have all of it
  already (the server still closing it), and they are recorded only when closed. A
  request still in the application is not waited for, and ends with the process, as
  SIGTERM's default disposition ends it.
* A server that ends a worker from a C signal handler (uwsgi) has its stop signals
  held back for the length of each request (`guard_stop_signals`), so a request is
  recorded and exported before the worker goes.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from time import perf_counter_ns
from typing import Any, Protocol

from ... import _signals
from ..._metrics import TIMER, error_name
from .._failures import failed
from .._methods import METHOD_TAGS, method_tag
from .._tagged import Tagged
from ._active import active_requests

Environ = dict[str, Any]
StartResponse = Callable[..., Any]

KEY = "instrument.request"  # environ key: the request being measured by an outer layer
DURATION = "http.server.request.duration"

# Recorded by the ASGI and aiohttp server integrations too: one metric, one list of tags.
server_duration = Tagged(
    DURATION,
    TIMER,
    "s",
    ("http.request.method", "url.scheme", "http.response.status_code", "http.route", "error.type"),
    integration=("wsgi", "asgi", "aiohttp_server"),
)
_SCHEMES = {"http": "http", "https": "https"}
# A name of this module for the imported dict each request looks its method up in: CPython
# compiles a method call on an imported name as an attribute load (the name might be a
# module), which makes a bound method object every time, on the hot path.
_method_tags = METHOD_TAGS

_STATUS_LIMIT = 1024  # distinct status lines whose code is cached
_codes: dict[str, int | None] = {}


def _status_code(status: object) -> int | None:
    """The numeric code of a status line such as ``"200 OK"``; None if it has none."""
    try:
        return _codes[status]  # type: ignore[index]
    except (KeyError, TypeError):
        pass
    try:
        code: int | None = int(str(status)[:3])
    except ValueError:
        code = None
    if isinstance(status, str) and len(_codes) < _STATUS_LIMIT:
        _codes[status] = code
    return code


# --- what a stopping process waits for ----------------------------------------------

# One entry per request whose response has started to go out and that is not closed yet.
_sending: deque[None] = deque()


def requests_sending() -> int:
    """Requests whose client has (or is about to have) the whole response, not yet recorded:
    a SIGTERM flush waits for them (`_signals.register_pending`)."""
    return len(_sending)


_signals.register_pending(requests_sending)


class Guard(Protocol):
    """Held by the serving thread for the length of each request (see `guard_stop_signals`)."""

    def hold(self) -> None: ...

    def release(self) -> None: ...


_guard: Guard | None = None


def guard_stop_signals(guard: Guard | None) -> None:
    """Call ``guard.hold()`` as each request starts and ``guard.release()`` once it is recorded.

    Set in uwsgi workers (`uwsgi.StopGuard`), whose stop signals must not end a request
    before it is recorded and exported.
    """
    global _guard
    _guard = guard


# --- the request -----------------------------------------------------------------------


class Request:
    """One request being measured: the start time, what the server was told, the tags."""

    __slots__ = (
        "_start_response", "active", "done", "guard", "handled", "in_send", "method", "route", "scheme", "sent",
        "start", "status",
    )

    def __init__(self, environ: Environ, start_response: StartResponse) -> None:
        self._start_response = start_response
        method = environ.get("REQUEST_METHOD")
        self.method = _method_tags.get(method) or method_tag(method or "")
        self.scheme = _SCHEMES.get(environ.get("wsgi.url_scheme"), "_OTHER")  # type: ignore[arg-type]
        self.status: str | None = None
        self.route: str | None = None  # set by a framework hook
        self.handled: str | None = None  # an exception the framework turned into a response
        self.sent = False  # a chunk of the body went to the server
        self.done = False
        self.in_send = False
        active = self.active = active_requests(self.method, self.scheme)
        active.enter()
        guard = self.guard = _guard
        if guard is not None:
            guard.hold()
        self.start = perf_counter_ns()

    def start_response(self, status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
        """The application's ``start_response``: the server's, remembering the status it accepted."""
        if exc_info is None:
            write = self._start_response(status, headers)
        else:
            try:
                write = self._start_response(status, headers, exc_info)
            except BaseException:
                self.sent = True  # the server re-raises because the headers went out already
                raise
        self.status = status
        return write

    def sending(self) -> None:
        """The first chunk of the body goes to the server (see `requests_sending`)."""
        self.sent = True
        if not self.done and not self.in_send:
            self.in_send = True
            _sending.append(None)

    def finish(self, exc: BaseException | None = None) -> None:
        """Record the request once. Never raises."""
        if self.done:
            return
        self.done = True
        if self.in_send:
            try:
                _sending.pop()
            except IndexError:  # each request leaves once: cannot happen
                pass
        try:
            elapsed = perf_counter_ns() - self.start
            self.active.leave()
            code = _status_code(self.status) if self.status is not None else None
            if exc is not None:
                error: str | None = error_name(type(exc))
                if code is None or not self.sent:
                    code = 500  # what servers answer when the app raised before any body went out
            elif code is not None and code >= 500:
                error = self.handled or str(code)
            else:
                error = None
            server_duration.record((self.method, self.scheme, code, self.route, error), elapsed)
        except Exception:  # instrumentation never breaks the request
            failed("wsgi", "record a request", "that request is not recorded")
        if self.guard is not None:
            try:
                self.guard.release()
            except Exception:  # never into the request
                failed("wsgi", "release the stop signals after a request", "a stop may wait for exit_timeout")


def current(environ: Environ) -> Request | None:
    """The request being measured for *environ*, for framework hooks to add tags to."""
    found = environ.get(KEY)
    return found if isinstance(found, Request) else None


def note_handled(integration: str, holder: Any, attribute: str, exc: BaseException) -> None:
    """A framework turned *exc* into a response for the request whose environ is
    ``holder.<attribute>``: its ``error.type``, should the response be a 5xx. Never raises
    (reading the attribute may: Flask's request outside a request context)."""
    try:
        request = current(getattr(holder, attribute))
        if request is not None:
            request.handled = error_name(type(exc))
    except Exception:
        failed(integration, "note a handled exception", "such requests are recorded without error.type")
