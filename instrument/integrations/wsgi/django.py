"""Django: ``WSGIHandler.__call__`` measures the request, whichever server calls it; the resolver's
route is its ``http.route``, and an exception Django turns into a 500 its ``error.type``."""

from __future__ import annotations

from collections.abc import Callable
from importlib import import_module
from types import ModuleType
from typing import Any

from .. import Integration
from .._failures import failed
from ._middleware import measured_call
from ._request import current, note_handled

IDENTIFIER = "wsgi.django"


def _resolve_request(original: Callable[..., Any]) -> Callable[..., Any]:
    def resolve_request(self: Any, request: Any) -> Any:
        match = original(self, request)
        try:
            measured = current(request.META)
            route = getattr(match, "route", None)
            if measured is not None and route:
                measured.route = str(route)
        except Exception:
            failed(IDENTIFIER, "read the route", "requests are recorded without http.route")
        return match

    return resolve_request


def _response_for_exception(original: Callable[..., Any]) -> Callable[..., Any]:
    def response_for_exception(request: Any, exc: BaseException) -> Any:
        note_handled(IDENTIFIER, request, "META", exc)
        return original(request, exc)

    return response_for_exception


class DjangoIntegration(Integration):
    identifier = IDENTIFIER
    distribution = "django"
    min_version = (3, 1)

    def setup(self, module: ModuleType) -> None:  # django.core.handlers.wsgi
        self.patch(module.WSGIHandler, "__call__", measured_call)
        base = import_module("django.core.handlers.base")
        self.patch(base.BaseHandler, "resolve_request", _resolve_request)
        exception = import_module("django.core.handlers.exception")
        self.patch(exception, "response_for_exception", _response_for_exception)
