"""Django's route and unhandled-exception hooks, shared by ``wsgi.django`` and ``asgi.django``.

Both handlers resolve the route in ``BaseHandler.resolve_request`` and turn an unhandled
exception into a 500 in ``django.core.handlers.exception.response_for_exception``. One
wrapper of each serves both: it finds the request being measured in the environ
(``request.META``, WSGI) or in the context (ASGI). Two integrations patching the same
functions would restore each other's wrappers when uninstalled out of order, so the
wrappers are installed by the first integration that needs them and removed when the
last one goes (`acquire`, `release`).
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from importlib import import_module
from typing import Any

from .._metrics import error_name
from ._failures import failed
from .asgi._request import current as asgi_current
from .wsgi._request import current as wsgi_current

IDENTIFIERS = ("wsgi.django", "asgi.django")

_users: set[str] = set()
_saved: list[tuple[Any, str, Any]] = []  # (owner, attribute, original), in the order patched


def _measured(request: Any) -> Any:
    """The WSGI or ASGI request being measured for Django's *request*, or None."""
    found = wsgi_current(getattr(request, "META", None) or {})
    return found if found is not None else asgi_current()


def _resolve_request(original: Callable[..., Any]) -> Callable[..., Any]:
    def resolve_request(self: Any, request: Any) -> Any:
        match = original(self, request)
        try:
            measured = _measured(request)
            route = getattr(match, "route", None)
            if measured is not None and route:
                measured.route = str(route)
        except Exception:
            failed(IDENTIFIERS, "read the route", "requests are recorded without http.route")
        return match

    return resolve_request


def _response_for_exception(original: Callable[..., Any]) -> Callable[..., Any]:
    def response_for_exception(request: Any, exc: BaseException) -> Any:
        try:
            measured = _measured(request)
            if measured is not None:
                measured.handled = error_name(type(exc))
        except Exception:
            failed(IDENTIFIERS, "note a handled exception", "such requests are recorded without error.type")
        return original(request, exc)

    return response_for_exception


def acquire(identifier: str) -> None:
    """Integration *identifier* needs the hooks: install them unless another one did."""
    if not _users:
        base = import_module("django.core.handlers.base").BaseHandler
        exception = import_module("django.core.handlers.exception")
        for owner, name, make in ((base, "resolve_request", _resolve_request),
                                  (exception, "response_for_exception", _response_for_exception)):
            original = getattr(owner, name)
            _saved.append((owner, name, original))
            setattr(owner, name, functools.update_wrapper(make(original), original))
    _users.add(identifier)


def release(identifier: str) -> None:
    """Integration *identifier* no longer needs the hooks: remove them if it was the last."""
    _users.discard(identifier)
    if not _users:
        while _saved:
            owner, name, original = _saved.pop()
            setattr(owner, name, original)
