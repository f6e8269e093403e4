"""Starlette (and FastAPI, built on it): ``Starlette.__call__`` measures the request, whichever
server calls it; the path template of the route that handles it is its ``http.route`` (a
websocket route's too, for a measured websocket session).

The template is the route's ``path`` (``/loans/{loan_id}``), after the paths of the
``Mount``s it is under (``/api/loans/{loan_id}``), read from the route objects as the
router hands the request to them (``Mount.handle``, ``Route.handle``), never from the
request's path.
"""

from __future__ import annotations

from collections.abc import Callable
from importlib import import_module
from types import ModuleType
from typing import Any

from .. import Integration
from .._failures import failed
from ._middleware import measured_call
from ._request import Receive, Scope, Send, current

IDENTIFIER = "asgi.starlette"
_MEASURED = ("http", "websocket")  # the scopes a `Request` or `Session` may measure


def note_route(route: Any, mount: bool = False) -> None:
    """*route* handles the current request: its path is the template (or, for a mount, its prefix)."""
    request = current()
    if request is None:
        return
    try:
        path = route.path
        if mount:
            request.prefix += path.rstrip("/")
            request.route = request.prefix + "/{path}"  # until a route inside the mount handles it
        else:
            request.route = request.prefix + path
    except Exception:
        failed(IDENTIFIER, "read the route", "requests are recorded without http.route")


def routed(mount: bool = False) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """A replacement for a route class's ``async handle(self, scope, receive, send)`` that notes its template."""

    def make(original: Callable[..., Any]) -> Callable[..., Any]:
        async def handle(self: Any, scope: Scope, receive: Receive, send: Send) -> Any:
            if scope.get("type") in _MEASURED:
                note_route(self, mount)
            return await original(self, scope, receive, send)

        return handle

    return make


class StarletteIntegration(Integration):
    identifier = IDENTIFIER
    distribution = "starlette"
    min_version = (0, 14, 2)

    def setup(self, module: ModuleType) -> None:  # starlette.applications
        self.patch(module.Starlette, "__call__", measured_call)
        routing = import_module("starlette.routing")
        self.patch(routing.Route, "handle", routed())
        self.patch(routing.WebSocketRoute, "handle", routed())
        self.patch(routing.Mount, "handle", routed(mount=True))
