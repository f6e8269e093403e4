"""uvicorn: the application ``Config.load()`` makes ready to serve, wrapped in a `Middleware`.

Every way uvicorn serves goes through ``Config.load``: ``uvicorn app:app``, ``uvicorn.run``,
a ``Server`` made by hand, gunicorn's uvicorn worker, and the processes that ``--workers N``
and ``--reload`` start (by spawn: they run ``instrument run``'s bootstrap again, from the
environment they inherit). A WSGI application served with ``--interface wsgi`` is left to
the WSGI integrations (Flask's, Django's), so that it is not counted twice.

Once ``Server.shutdown`` has let the last requests finish, everything recorded is
flushed: uvicorn then raises the SIGTERM it stopped on again, with the disposition it
found, which in gunicorn's uvicorn worker is the default one (the worker resets
gunicorn's handlers), so the process would end without its exit hooks.
"""

from __future__ import annotations

from collections.abc import Callable
from importlib import import_module
from types import ModuleType
from typing import Any

from .. import Integration
from ._middleware import flush_at_stop, wrap


def _load(original: Callable[..., Any]) -> Callable[..., Any]:
    def load(self: Any) -> Any:
        result = original(self)
        if getattr(self, "interface", None) != "wsgi":
            self.loaded_app = wrap(self.loaded_app)
        return result

    return load


def _shutdown(original: Callable[..., Any]) -> Callable[..., Any]:
    async def shutdown(self: Any, *args: Any, **kwargs: Any) -> Any:
        try:
            return await original(self, *args, **kwargs)
        finally:
            flush_at_stop("asgi.uvicorn")

    return shutdown


class UvicornIntegration(Integration):
    identifier = "asgi.uvicorn"
    distribution = "uvicorn"
    min_version = (0, 18, 1)

    def setup(self, module: ModuleType) -> None:  # uvicorn.config
        self.patch(module.Config, "load", _load)
        self.patch(import_module("uvicorn.server").Server, "shutdown", _shutdown)
