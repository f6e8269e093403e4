"""FastAPI: the path template of the ``APIRoute`` that handles a request is its ``http.route``.

A FastAPI application is a Starlette one, measured by the ``asgi.starlette`` integration;
``APIRoute.handle`` may serve a request without calling Starlette's ``Route.handle``, so it
notes its template itself.
"""

from __future__ import annotations

from types import ModuleType

from .. import Integration
from .starlette import routed


class FastAPIIntegration(Integration):
    identifier = "asgi.fastapi"
    distribution = "fastapi"
    min_version = (0, 65)

    def setup(self, module: ModuleType) -> None:  # fastapi.routing
        self.patch(module.APIRoute, "handle", routed())
