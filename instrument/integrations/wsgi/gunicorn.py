"""gunicorn: the application each worker loads (``BaseApplication.wsgi()``), wrapped in a `Middleware`.

The master imports instrument at start-up (``instrument run``'s bootstrap) and each
worker, forked with ``os.fork``, resets the pipeline through instrument's own fork
hook; nothing here is about forking.
"""

from __future__ import annotations

from collections.abc import Callable
from types import ModuleType
from typing import Any

from .. import Integration
from ._middleware import wrap


def _wsgi(original: Callable[..., Any]) -> Callable[..., Any]:
    def wsgi(self: Any) -> Any:
        return wrap(original(self))

    return wsgi


class GunicornIntegration(Integration):
    identifier = "wsgi.gunicorn"
    distribution = "gunicorn"
    min_version = (20, 1)

    def setup(self, module: ModuleType) -> None:  # gunicorn.app.base
        self.patch(module.BaseApplication, "wsgi", _wsgi)
