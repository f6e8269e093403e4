"""Measuring the requests an application serves: `serve`, and the `Middleware` built on it.

Every way a request is measured goes through `serve`, by hand (`Middleware`) or from
a server's or framework's hook (`wrap`, `measured_call`), so whichever layer runs
first measures and the others step aside.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Iterable
from typing import Any

from ... import _record
from .._failures import failed
from ._body import respond
from ._request import KEY, Environ, Request, StartResponse

Application = Callable[[Environ, StartResponse], Iterable[Any]]


def serve(app: Application, environ: Environ, start_response: StartResponse) -> Any:
    """Call *app* for one request, measured unless an outer layer already measures it."""
    if KEY in environ or not _record.ENABLED:
        return app(environ, start_response)
    try:
        request = Request(environ, start_response)
    except Exception:  # e.g. a metric name already used by the application: serve unmeasured
        failed("wsgi", "measure a request", "requests are served unmeasured")
        return app(environ, start_response)
    environ[KEY] = request
    try:
        result = app(environ, request.start_response)
    except BaseException as exc:
        request.finish(exc)
        raise
    return respond(request, result, environ)


class Middleware:
    """Measure every request *app* serves (see `instrument.integrations.wsgi` for what is recorded).

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


def is_asgi(app: Any) -> bool:
    """Whether *app* is called as a coroutine function: an ASGI 3 application (gunicorn's
    uvicorn worker loads one through ``wsgi()``), which a WSGI middleware must not wrap."""
    if inspect.isclass(app) or not callable(app):
        return False
    # A function, or an instance whose class's __call__ is ``async def``.
    return inspect.iscoroutinefunction(app) or inspect.iscoroutinefunction(type(app).__call__)


def wrap(app: Any) -> Any:
    """*app* wrapped in a `Middleware` (once: an app already wrapped, or an ASGI one, is returned as is)."""
    if isinstance(app, Middleware) or not callable(app) or is_asgi(app):
        return app
    return Middleware(app)


def measured_call(original: Callable[..., Any]) -> Callable[..., Any]:
    """A replacement for a framework's ``__call__(self, environ, start_response)`` that serves
    through `serve` (for `Integration.patch`)."""

    def __call__(self: Any, environ: Environ, start_response: StartResponse) -> Any:
        if KEY in environ:
            return original(self, environ, start_response)
        return serve(original.__get__(self), environ, start_response)

    return __call__
