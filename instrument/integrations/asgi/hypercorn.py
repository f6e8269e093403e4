"""hypercorn: the ASGI application its ``ASGIWrapper`` holds, wrapped in a `Middleware`.

The ``hypercorn`` command and ``hypercorn.asyncio.serve``/``hypercorn.trio.serve`` all
hand the application to ``hypercorn.app_wrappers.ASGIWrapper``, which every worker calls.

Once a worker's ``worker_serve`` returns (its last request served), what it recorded is
flushed: with ``--workers N`` the parent terminates the workers still running as soon as
one has exited, and a worker whose event loop has closed has SIGTERM back at its default
disposition (asyncio restores it), so it would die in its exit hooks before they export.
"""

from __future__ import annotations

from collections.abc import Callable
from types import ModuleType
from typing import Any

from ... import _importhook
from .. import Integration
from ._middleware import flush_at_stop, wrap


def _init(original: Callable[..., Any]) -> Callable[..., Any]:
    def __init__(self: Any, app: Any, *args: Any, **kwargs: Any) -> None:
        original(self, wrap(app), *args, **kwargs)

    return __init__


def _worker_serve(original: Callable[..., Any]) -> Callable[..., Any]:
    async def worker_serve(*args: Any, **kwargs: Any) -> Any:
        try:
            return await original(*args, **kwargs)
        finally:
            flush_at_stop("asgi.hypercorn")

    return worker_serve


class HypercornIntegration(Integration):
    identifier = "asgi.hypercorn"
    distribution = "hypercorn"
    min_version = (0, 14)

    def setup(self, module: ModuleType) -> None:  # hypercorn.app_wrappers
        self.patch(module.ASGIWrapper, "__init__", _init)
        # The asyncio (and uvloop) workers' serving coroutine, once its module is whole (this
        # hook can run while it is being imported); trio's is left to exit hooks.
        _importhook.when_imported("hypercorn.asyncio.run", lambda run: self.patch(run, "worker_serve", _worker_serve))
