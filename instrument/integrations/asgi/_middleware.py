"""Measuring the requests an ASGI application serves: `serve`, and the `Middleware` built on it.

Every way a request is measured goes through `serve`, by hand (`Middleware`) or from a
server's or framework's hook (`wrap`, `measured_call`), so whichever layer runs first
measures and the others step aside.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from ... import _record
from .._failures import failed
from ._request import Receive, Request, Scope, Send, current, enter, leave
from ._session import Session

# Returns None, as ASGI says; what one returns all the same is passed on (uvicorn logs it).
Application = Callable[[Scope, Receive, Send], Awaitable[Any]]


async def serve(app: Application, scope: Scope, receive: Receive, send: Send) -> Any:
    """Call *app* for one connection: an ``http`` request is measured, and a ``websocket``
    session with the ``websocket_sessions`` option, unless an outer layer measures it; other
    scopes (``lifespan``) pass through untouched. What *app* returns is returned (it should
    be None; uvicorn logs any other value and closes the connection)."""
    kind = scope.get("type")
    if current() is not None or not _record.ENABLED or (kind != "http" and not _sessions_measured(kind)):
        return await app(scope, receive, send)
    try:
        connection = Request(scope, receive, send) if kind == "http" else Session(scope, receive, send)
    except Exception:  # e.g. a metric name already used by the application: serve unmeasured
        failed("asgi", "measure a request", "requests are served unmeasured")
        return await app(scope, receive, send)
    token = enter(connection)
    try:
        result = await app(scope, connection.receive, connection.send)
    except BaseException as exc:
        connection.finish(exc)
        raise
    finally:
        leave(token)
    connection.finish(returned=True)
    return result


def _sessions_measured(kind: object) -> bool:
    if kind != "websocket":
        return False
    from ..._config import settings

    return bool(settings.current.websocket_sessions)


class Middleware:
    """Measure every HTTP request *app* (an ASGI 3 application) serves; see
    `instrument.integrations.asgi` for what is recorded.

    >>> from instrument.integrations.asgi import Middleware
    >>> app = Middleware(app)

    Wrapping twice, or serving a wrapped app under ``instrument run``, still counts each
    request once. Attributes other than ``app`` are looked up on *app*.
    """

    __slots__ = ("app",)

    def __init__(self, app: Application) -> None:
        if not callable(app):
            raise TypeError(f"Middleware needs an ASGI application (a callable), got {app!r}")
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> Any:
        return await serve(self.app, scope, receive, send)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.app, name)

    def __repr__(self) -> str:
        return f"<instrument.integrations.asgi.Middleware {self.app!r}>"


def wrap(app: Any) -> Any:
    """*app* wrapped in a `Middleware` (once: an app already wrapped, or not callable, is returned as is)."""
    if isinstance(app, Middleware) or not callable(app):
        return app
    return Middleware(app)


def flush_at_stop(integration: str) -> None:
    """Export what was recorded, within ``exit_timeout``: a server has served its last request
    and may end its process without exit hooks. Never raises."""
    try:
        from ..._config import settings
        from ..._pipeline import PIPELINE

        PIPELINE.flush(settings.current.exit_timeout)
    except Exception:
        failed(integration, "flush as the server stops", "what the last interval recorded may be lost")


def measured_call(original: Callable[..., Any]) -> Callable[..., Any]:
    """A replacement for a framework's ``async __call__(self, scope, receive, send)`` that serves
    through `serve` (for `Integration.patch`)."""

    async def __call__(self: Any, scope: Scope, receive: Receive, send: Send) -> Any:
        if current() is not None:
            return await original(self, scope, receive, send)
        return await serve(original.__get__(self), scope, receive, send)

    return __call__
