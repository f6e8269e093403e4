"""The Django project of `wsgi_django`, served through Django's ASGI handler."""

from __future__ import annotations

from django.core.asgi import get_asgi_application

from . import wsgi_django  # noqa: F401  (configures settings and is the URLconf)

application = get_asgi_application()
