"""wsgiref: the application `wsgiref.simple_server.WSGIServer` is given, wrapped in a `Middleware`."""

from __future__ import annotations

from collections.abc import Callable
from types import ModuleType
from typing import Any

from .. import Integration
from ._middleware import wrap


def _set_app(original: Callable[..., Any]) -> Callable[..., Any]:
    def set_app(self: Any, application: Any) -> Any:
        return original(self, wrap(application))

    return set_app


class WsgirefIntegration(Integration):
    identifier = "wsgi.wsgiref"

    def setup(self, module: ModuleType) -> None:
        self.patch(module.WSGIServer, "set_app", _set_app)
