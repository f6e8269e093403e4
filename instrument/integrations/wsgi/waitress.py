"""waitress: the application given to ``create_server`` (which ``serve`` and ``waitress-serve``
call), wrapped in a `Middleware`."""

from __future__ import annotations

from collections.abc import Callable
from importlib import import_module
from types import ModuleType
from typing import Any

from .. import Integration
from ._middleware import wrap


def _create_server(original: Callable[..., Any]) -> Callable[..., Any]:
    def create_server(application: Any, *args: Any, **kwargs: Any) -> Any:
        return original(wrap(application), *args, **kwargs)

    return create_server


class WaitressIntegration(Integration):
    identifier = "wsgi.waitress"
    distribution = "waitress"
    min_version = (1, 3)

    def setup(self, module: ModuleType) -> None:
        self.patch(import_module("waitress.server"), "create_server", _create_server)
        if hasattr(module, "create_server"):  # the package re-exports it
            self.patch(module, "create_server", _create_server)
