"""Django: ``ASGIHandler.__call__`` measures the request, whichever ASGI server calls it; the
resolver's route is its ``http.route``, and an exception Django turns into a 500 its ``error.type``.
"""

from __future__ import annotations

from types import ModuleType

from .. import Integration
from .._django import acquire, release
from ._middleware import measured_call

IDENTIFIER = "asgi.django"


class DjangoIntegration(Integration):
    identifier = IDENTIFIER
    distribution = "django"
    min_version = (3, 1)

    def setup(self, module: ModuleType) -> None:  # django.core.handlers.asgi
        self.patch(module.ASGIHandler, "__call__", measured_call)
        acquire(IDENTIFIER)  # the route and exception hooks, shared with wsgi.django

    def uninstall(self) -> None:
        release(IDENTIFIER)
        super().uninstall()
