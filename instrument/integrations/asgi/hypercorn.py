"""hypercorn: the ASGI application its ``ASGIWrapper`` holds, wrapped in a `Middleware`.

The ``hypercorn`` command and ``hypercorn.asyncio.serve``/``hypercorn.trio.serve`` all
hand the application to ``hypercorn.app_wrappers.ASGIWrapper``, which every worker calls.
"""

from __future__ import annotations

from collections.abc import Callable
from types import ModuleType
from typing import Any

from .. import Integration
from ._middleware import wrap


def _init(original: Callable[..., Any]) -> Callable[..., Any]:
    def __init__(self: Any, app: Any, *args: Any, **kwargs: Any) -> None:
        original(self, wrap(app), *args, **kwargs)

    return __init__


class HypercornIntegration(Integration):
    identifier = "asgi.hypercorn"
    distribution = "hypercorn"
    min_version = (0, 14)

    def setup(self, module: ModuleType) -> None:  # hypercorn.app_wrappers
        self.patch(module.ASGIWrapper, "__init__", _init)
