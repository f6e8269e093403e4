"""Django: ``ASGIHandler.__call__`` measures the request, whichever ASGI server calls it; the
resolver's route is its ``http.route``, and an exception Django turns into a 500 its ``error.type``.
"""

from __future__ import annotations

from collections.abc import Callable
from importlib import import_module
from types import ModuleType
from typing import Any

from ..._metrics import error_name
from .. import Integration
from .._failures import failed
from ._middleware import measured_call
from ._request import current

IDENTIFIER = "asgi.django"


def _resolve_request(original: Callable[..., Any]) -> Callable[..., Any]:
    def resolve_request(self: Any, request: Any) -> Any:
        match = original(self, request)
        measured = current()
        if measured is not None:
            try:
                route = getattr(match, "route", None)
                if route:
                    measured.route = str(route)
            except Exception:
                failed(IDENTIFIER, "read the route", "requests are recorded without http.route")
        return match

    return resolve_request


def _response_for_exception(original: Callable[..., Any]) -> Callable[..., Any]:
    def response_for_exception(request: Any, exc: BaseException) -> Any:
        measured = current()
        if measured is not None:
            measured.handled = error_name(type(exc))
        return original(request, exc)

    return response_for_exception


class DjangoIntegration(Integration):
    identifier = IDENTIFIER
    distribution = "django"
    min_version = (3, 2)

    def setup(self, module: ModuleType) -> None:  # django.core.handlers.asgi
        self.patch(module.ASGIHandler, "__call__", measured_call)
        base = import_module("django.core.handlers.base")
        self.patch(base.BaseHandler, "resolve_request", _resolve_request)
        exception = import_module("django.core.handlers.exception")
        self.patch(exception, "response_for_exception", _response_for_exception)
