"""Flask: ``Flask.__call__`` measures the request, whichever server calls it; the matched rule is
its ``http.route``, and an exception Flask turns into a 500 its ``error.type``."""

from __future__ import annotations

from collections.abc import Callable
from importlib import import_module
from types import ModuleType
from typing import Any

from .. import Integration, installed_version
from .._failures import failed
from ._middleware import measured_call
from ._request import current, note_handled

IDENTIFIER = "wsgi.flask"


def _match_request(original: Callable[..., Any]) -> Callable[..., Any]:
    def match_request(self: Any) -> Any:
        result = original(self)
        try:
            rule = self.request.url_rule
            request = current(self.request.environ)
            if request is not None and rule is not None:
                request.route = str(rule.rule)
        except Exception:
            failed(IDENTIFIER, "read the route", "requests are recorded without http.route")
        return result

    return match_request


def _handle_exception(original: Callable[..., Any]) -> Callable[..., Any]:
    flask_request = import_module("flask").request

    def handle_exception(self: Any, e: BaseException) -> Any:
        note_handled(IDENTIFIER, flask_request, "environ", e)
        return original(self, e)

    return handle_exception


class FlaskIntegration(Integration):
    identifier = IDENTIFIER
    distribution = "flask"
    min_version = (2,)

    def version(self, module: ModuleType, distribution: str | None = None) -> str | None:
        """From the distribution's metadata: Flask 3.1 deprecates ``flask.__version__``."""
        return installed_version(distribution or "flask")

    def setup(self, module: ModuleType) -> None:
        self.patch(module.Flask, "__call__", measured_call)
        self.patch(module.Flask, "handle_exception", _handle_exception)
        ctx = import_module("flask.ctx")
        if hasattr(ctx, "RequestContext") and hasattr(ctx.RequestContext, "match_request"):
            self.patch(ctx.RequestContext, "match_request", _match_request)
