"""WSGI: every request a server hands to the application, measured once, to its end.

``Middleware(app)`` wraps an application by hand; under auto-instrumentation
`WsgiIntegration` wraps the application that gunicorn, uwsgi, waitress or
``wsgiref.simple_server`` calls, and Flask's and Django's own WSGI entry points, so a
Flask or Django app is measured whichever server loads it.

Metrics (OpenTelemetry HTTP server conventions):

* ``http.server.request.duration`` (seconds), tagged ``http.request.method`` (known
  methods, anything else ``_OTHER``), ``url.scheme``, ``http.response.status_code``,
  ``http.route`` when the framework matched a route template (Flask's rule, Django's
  route; never the raw path) and ``error.type`` when the request failed: the class of
  an exception the application raised, or the status code of a 5xx response.
* ``http.server.active_requests`` (``{request}``), tagged method and scheme: requests
  in progress in this process. OpenTelemetry makes it an up-down counter; it is kept
  here as a count that only the request path changes and exported as a gauge whose
  value is that count (see `_Active`).

Counted once: the outermost layer puts its `_Request` in the environ under `KEY`;
an inner layer (a Flask app served by gunicorn, a hand-made `Middleware` that the
server's hook wraps again) finds it there and only calls through. Framework hooks
use the same object to report the route and a handled exception.

Duration: from the call into the application until the server calls ``close()`` on
the response iterable (PEP 3333 makes servers call it, after the last chunk or on
abort), or until iterating it raises. The response is handed back in a thin proxy
that keeps ``len()`` where the original has it (servers derive Content-Length from
it) and forwards other attributes. A ``wsgi.file_wrapper`` object keeps its
identity, so servers still send it with ``sendfile()``: its ``close`` is replaced on
that (per-request) object instead, as Django itself does. uwsgi's file wrapper
returns the file itself, which cannot take a new ``close``: that response is
measured until the application returns. Exceptions from the application, its
iterable or its ``close()`` propagate unchanged; recording never raises.
"""

from __future__ import annotations

import sys
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from importlib import import_module
from time import perf_counter_ns
from types import ModuleType
from typing import Any, Protocol

from .. import _record, _signals
from .._metrics import GAUGE, TIMER, Series, declare_series, error_name
from . import Integration
from ._failures import failed
from ._methods import METHOD_TAGS, method_tag
from ._tagged import Tagged

__all__ = ["KEY", "Middleware", "WsgiIntegration"]

Environ = dict[str, Any]
StartResponse = Callable[..., Any]
Application = Callable[[Environ, StartResponse], Iterable[Any]]

KEY = "instrument.request"  # environ key: the request being measured by an outer layer
DURATION = "http.server.request.duration"
ACTIVE = "http.server.active_requests"

_duration = Tagged(
    DURATION,
    TIMER,
    "s",
    ("http.request.method", "url.scheme", "http.response.status_code", "http.route", "error.type"),
    integration="wsgi",
)
_SCHEMES = {"http": "http", "https": "https"}
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


class _Active:
    """Requests in progress for one (method, scheme): a count kept without a lock.

    The count is the length of a deque: ``append`` and ``pop`` are single C calls, so
    concurrent requests never lose an update (with or without the GIL: free-threaded
    builds lock the deque per operation). After each change the count is published to
    the gauge series; a thread preempted between reading and publishing could publish
    a stale value, so it reads the count again after publishing and repeats until the
    two agree. The last thread to publish therefore leaves the current count, and the
    gauge never sticks at a stale value once requests stop.
    """

    __slots__ = ("_entries", "_series")

    def __init__(self, series: Series) -> None:
        self._entries: deque[None] = deque()
        self._series = series

    def enter(self) -> None:
        self._entries.append(None)
        self._publish()

    def leave(self) -> None:
        try:
            self._entries.pop()
        except IndexError:  # each request leaves once, so this cannot happen: stay at zero
            pass
        self._publish()

    def _publish(self) -> None:
        entries = self._entries
        series = self._series
        while True:
            count = len(entries)
            series.value = count
            series.changed = True
            if len(entries) == count:
                break


_actives: dict[tuple[str, str], _Active] = {}


# One entry per request whose whole body went to the server and that is not closed yet.
_closing: deque[None] = deque()


def requests_closing() -> int:
    """Requests whose client has (or is about to have) the whole response, not yet recorded:
    a SIGTERM flush waits for them (`_signals.register_pending`)."""
    return len(_closing)


_signals.register_pending(requests_closing)


class Guard(Protocol):
    """Held by the serving thread for the length of each request (see `guard_stop_signals`)."""

    def hold(self) -> None: ...

    def release(self) -> None: ...


_guard: Guard | None = None


def guard_stop_signals(guard: Guard | None) -> None:
    """Call ``guard.hold()`` as each request starts and ``guard.release()`` once it is recorded.

    Set in uwsgi workers (`_uwsgi.StopGuard`), whose stop signals must not end a request
    before it is recorded and exported.
    """
    global _guard
    _guard = guard


def _active(method: str, scheme: str) -> _Active:
    key = (method, scheme)
    found = _actives.get(key)
    if found is None:
        series = declare_series(ACTIVE, GAUGE, {"http.request.method": method, "url.scheme": scheme}, "{request}")
        series.metric.additive = True  # each worker's count is its share of the service's
        found = _actives.setdefault(key, _Active(series))
    return found


class _Request:
    """One request being measured: the start time, what the server was told, the tags."""

    __slots__ = (
        "_start_response", "active", "done", "guard", "handled", "in_close", "method", "route", "scheme", "sent",
        "start", "status",
    )

    def __init__(self, environ: Environ, start_response: StartResponse) -> None:
        self._start_response = start_response
        method = environ.get("REQUEST_METHOD")
        self.method = METHOD_TAGS.get(method) or method_tag(method or "")
        self.scheme = _SCHEMES.get(environ.get("wsgi.url_scheme"), "_OTHER")  # type: ignore[arg-type]
        self.status: str | None = None
        self.route: str | None = None  # set by a framework hook
        self.handled: str | None = None  # an exception the framework turned into a response
        self.sent = False  # a chunk of the body went to the server
        self.done = False
        self.in_close = False
        self.active = _active(self.method, self.scheme)
        self.active.enter()
        self.guard = _guard
        if self.guard is not None:
            self.guard.hold()
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

    def closing(self) -> None:
        """The whole body went to the server; only close() is left (see `requests_closing`)."""
        if not self.done and not self.in_close:
            self.in_close = True
            _closing.append(None)

    def finish(self, exc: BaseException | None = None) -> None:
        """Record the request once. Never raises."""
        if self.done:
            return
        self.done = True
        if self.in_close:
            try:
                _closing.pop()
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
            _duration.record((self.method, self.scheme, code, self.route, error), elapsed)
        except Exception:  # instrumentation never breaks the request
            failed("wsgi", "record a request", "that request is not recorded")
        if self.guard is not None:
            try:
                self.guard.release()
            except Exception:  # never into the request
                failed("wsgi", "release the stop signals after a request", "a stop may wait for exit_timeout")

    def body(self, result: Any, environ: Environ) -> Any:
        """What to hand the server for *result*: measured until it is closed."""
        cls = type(result)
        if cls is list or cls is tuple:
            return _SizedBody(result, self)
        if cls is bytes or cls is str:  # not an iterable of chunks; servers special-case it
            self.finish()
            return result
        file_wrapper = environ.get("wsgi.file_wrapper")
        if isinstance(file_wrapper, type):
            if isinstance(result, file_wrapper) and self._watch_close(result):
                return result
        elif file_wrapper is not None and hasattr(result, "fileno"):
            # uwsgi's file_wrapper returns the file itself and sends it with sendfile()
            # only if it gets that very object back: keep it, end the measurement here.
            self.finish()
            return result
        if hasattr(cls, "__len__"):
            return _SizedBody(result, self)
        return _Body(result, self)

    def _watch_close(self, result: Any) -> bool:
        """Replace ``close`` on a per-request file wrapper; False if it refuses attributes."""
        original = getattr(result, "close", None)
        request = self

        def close() -> None:
            try:
                if original is not None:
                    original()
            except BaseException as exc:
                request.finish(exc)
                raise
            request.finish()

        try:
            result.close = close
        except (AttributeError, TypeError):
            return False
        return True


class _Body:
    """The response iterable as the server sees it: iterates and closes the original.

    Other attributes are forwarded, so a server or middleware looking for one finds
    the original's.
    """

    __slots__ = ("_iterable", "_request")

    def __init__(self, iterable: Iterable[Any], request: _Request) -> None:
        self._iterable = iterable
        self._request = request

    def __iter__(self) -> Iterator[Any]:
        # A for loop, not `yield from`: when the server abandons the iteration, closing
        # this generator must not close the original too (close() below does, once).
        request = self._request
        try:
            for chunk in self._iterable:
                request.sent = True
                yield chunk
        except GeneratorExit:
            raise
        except BaseException as exc:
            request.finish(exc)
            raise
        request.closing()

    def close(self) -> None:
        close = getattr(self._iterable, "close", None)
        if close is not None:
            try:
                close()
            except BaseException as exc:
                self._request.finish(exc)
                raise
        self._request.finish()

    def __getattr__(self, name: str) -> Any:
        if name in _Body.__slots__:  # not set yet: never recurse
            raise AttributeError(name)
        return getattr(self._iterable, name)

    def __del__(self) -> None:
        # A server that never calls close() (PEP 3333 says it must) would otherwise
        # leave the request active forever.
        request = self._request
        if not request.done:
            request.finish()


class _SizedBody(_Body):
    """A `_Body` whose original has a length (a list of chunks, usually)."""

    __slots__ = ()

    def __len__(self) -> int:
        return len(self._iterable)  # type: ignore[arg-type]


def serve(app: Application, environ: Environ, start_response: StartResponse) -> Any:
    """Call *app* for one request, measured unless an outer layer already measures it."""
    if KEY in environ or not _record.ENABLED:
        return app(environ, start_response)
    try:
        request = _Request(environ, start_response)
    except Exception:  # e.g. a metric name already used by the application: serve unmeasured
        failed("wsgi", "measure a request", "requests are served unmeasured")
        return app(environ, start_response)
    environ[KEY] = request
    try:
        result = app(environ, request.start_response)
    except BaseException as exc:
        request.finish(exc)
        raise
    return request.body(result, environ)


class Middleware:
    """Measure every request *app* serves (see the module docstring for what is recorded).

    >>> from instrument.integrations.wsgi import Middleware
    >>> app = Middleware(app)                      # any WSGI application
    >>> flask_app.wsgi_app = Middleware(flask_app.wsgi_app)

    Wrapping twice, or serving a wrapped app under ``instrument run``, still counts
    each request once. Attributes other than ``app`` are looked up on *app*. The
    ``http.route`` tag comes from the Flask and Django hooks, which
    ``instrument run`` or ``instrument.auto.install(include=["wsgi"])`` installs.
    """

    __slots__ = ("app",)

    def __init__(self, app: Application) -> None:
        if not callable(app):
            raise TypeError(f"Middleware needs a WSGI application (a callable), got {app!r}")
        self.app = app

    def __call__(self, environ: Environ, start_response: StartResponse) -> Any:
        return serve(self.app, environ, start_response)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.app, name)

    def __repr__(self) -> str:
        return f"<instrument.integrations.wsgi.Middleware {self.app!r}>"


def wrap(app: Any) -> Any:
    """*app* wrapped in a `Middleware` (once: an app already wrapped is returned as is)."""
    if isinstance(app, Middleware) or not callable(app):
        return app
    return Middleware(app)


def current(environ: Environ) -> _Request | None:
    """The request being measured for *environ*, for framework hooks to add tags to."""
    found = environ.get(KEY)
    return found if isinstance(found, _Request) else None


# --- hooks, one per server or framework --------------------------------------------


def _bound_serve(original: Callable[..., Any]) -> Callable[..., Any]:
    """A replacement for a framework's ``__call__(self, environ, start_response)``."""

    def __call__(self: Any, environ: Environ, start_response: StartResponse) -> Any:
        if KEY in environ:
            return original(self, environ, start_response)
        return serve(original.__get__(self), environ, start_response)

    return __call__


def _wrapping_first_argument(original: Callable[..., Any]) -> Callable[..., Any]:
    """A replacement for ``f(application, ...)`` that wraps the application first."""

    def replacement(application: Any, *args: Any, **kwargs: Any) -> Any:
        return original(wrap(application), *args, **kwargs)

    return replacement


def _wsgiref_set_app(original: Callable[..., Any]) -> Callable[..., Any]:
    def set_app(self: Any, application: Any) -> Any:
        return original(self, wrap(application))

    return set_app


def _gunicorn_wsgi(original: Callable[..., Any]) -> Callable[..., Any]:
    def wsgi(self: Any) -> Any:
        return wrap(original(self))

    return wsgi


def _flask_match_request(original: Callable[..., Any]) -> Callable[..., Any]:
    def match_request(self: Any) -> Any:
        result = original(self)
        try:
            rule = self.request.url_rule
            request = current(self.request.environ)
            if request is not None and rule is not None:
                request.route = str(rule.rule)
        except Exception:
            failed("wsgi", "read the Flask route", "requests are recorded without http.route")
        return result

    return match_request


def _note_handled(holder: Any, attribute: str, exc: BaseException) -> None:
    """Tell the request measured for ``holder.<attribute>`` (its WSGI environ) that the
    framework turned *exc* into a response: its ``error.type``. Never raises."""
    try:
        request = current(getattr(holder, attribute))
        if request is not None:
            request.handled = error_name(type(exc))
    except Exception:
        failed("wsgi", "note a handled exception", "such requests are recorded without error.type")


def _flask_handle_exception(original: Callable[..., Any]) -> Callable[..., Any]:
    flask_request = import_module("flask").request

    def handle_exception(self: Any, e: BaseException) -> Any:
        _note_handled(flask_request, "environ", e)
        return original(self, e)

    return handle_exception


def _django_resolve_request(original: Callable[..., Any]) -> Callable[..., Any]:
    def resolve_request(self: Any, request: Any) -> Any:
        match = original(self, request)
        try:
            measured = current(request.META)
            route = getattr(match, "route", None)
            if measured is not None and route:
                measured.route = str(route)
        except Exception:
            failed("wsgi", "read the Django route", "requests are recorded without http.route")
        return match

    return resolve_request


def _django_response_for_exception(original: Callable[..., Any]) -> Callable[..., Any]:
    def response_for_exception(request: Any, exc: BaseException) -> Any:
        _note_handled(request, "META", exc)
        return original(request, exc)

    return response_for_exception


# Trigger module -> (distribution, minimum version) it must come from.
_REQUIREMENTS: dict[str, tuple[str | None, tuple[int, ...]]] = {
    "wsgiref.simple_server": (None, ()),
    "gunicorn.app.base": ("gunicorn", (20,)),
    "waitress": ("waitress", (2,)),
    "flask": ("flask", (2,)),
    "django.core.handlers.wsgi": ("django", (3, 2)),
    "uwsgi": ("uwsgi", (2,)),
}


class WsgiIntegration(Integration):
    """Wraps the application each WSGI server calls, and Flask's and Django's entry points.

    Each trigger module installs its own hooks; all of them go through `serve`, so
    whichever runs first (the server's, normally) measures and the others step aside.
    """

    identifier = "wsgi"
    def __init__(self) -> None:
        super().__init__()
        self._waiting: list[tuple[str, Callable[[ModuleType], None]]] = []

    def requirement(self, module: ModuleType) -> tuple[str | None, tuple[int, ...]]:
        return _REQUIREMENTS.get(module.__name__, (None, ()))

    def version(self, module: ModuleType, distribution: str | None = None) -> str | None:
        """The distribution's version from its metadata (Flask 3.1 deprecates ``__version__``)."""
        if distribution is None:
            return None
        from importlib.metadata import PackageNotFoundError, version

        try:
            return version(distribution)
        except PackageNotFoundError:  # e.g. uwsgi built from source or a distribution package
            return None

    def setup(self, module: ModuleType) -> None:
        name = module.__name__
        if name == "wsgiref.simple_server":
            self.patch(module.WSGIServer, "set_app", _wsgiref_set_app)
        elif name == "gunicorn.app.base":
            self.patch(module.BaseApplication, "wsgi", _gunicorn_wsgi)
        elif name == "waitress":
            self.patch(import_module("waitress.server"), "create_server", _wrapping_first_argument)
            if hasattr(module, "create_server"):
                self.patch(module, "create_server", _wrapping_first_argument)
        elif name == "flask":
            ctx = import_module("flask.ctx")
            self.patch(module.Flask, "__call__", _bound_serve)
            self.patch(module.Flask, "handle_exception", _flask_handle_exception)
            if hasattr(ctx, "RequestContext") and hasattr(ctx.RequestContext, "match_request"):
                self.patch(ctx.RequestContext, "match_request", _flask_match_request)
        elif name == "django.core.handlers.wsgi":
            self.patch(module.WSGIHandler, "__call__", _bound_serve)
            base = import_module("django.core.handlers.base")
            self.patch(base.BaseHandler, "resolve_request", _django_resolve_request)
            exception = import_module("django.core.handlers.exception")
            self.patch(exception, "response_for_exception", _django_response_for_exception)
        elif name == "uwsgi":
            from . import _uwsgi

            for target, attribute, factory in _uwsgi.applications(module):
                self._wrap_when_imported(target, attribute, factory)
        self._prepare_uwsgi()

    def _prepare_uwsgi(self) -> None:
        """Inside uwsgi, whatever triggered us: hook its fork and exit (see `_uwsgi`)."""
        uwsgi = sys.modules.get("uwsgi")
        if uwsgi is not None and hasattr(uwsgi, "opt"):
            from . import _uwsgi

            _uwsgi.prepare(uwsgi)

    def _wrap_when_imported(self, module_name: str, attribute: str, factory: bool) -> None:
        """Wrap ``module_name.attribute`` (or what that factory returns) once it is imported."""
        from .. import _importhook

        def make(original: Any) -> Any:
            if not factory:
                return wrap(original)

            def create(*args: Any, **kwargs: Any) -> Any:
                return wrap(original(*args, **kwargs))

            return create

        def hook(imported: ModuleType) -> None:
            if hasattr(imported, attribute):
                self.patch(imported, attribute, make)

        self._waiting.append((module_name, hook))
        _importhook.when_imported(module_name, hook)

    def uninstall(self) -> None:
        """Restore every patched attribute and forget hooks still waiting for an import."""
        from .. import _importhook

        while self._waiting:
            _importhook.discard(*self._waiting.pop())
        super().uninstall()
