"""A one-module Django project with parameterised routes for the WSGI tests.

``tests.integrations.wsgi_django:application`` is its WSGI application; the module is
also its settings-free URLconf.
"""

from __future__ import annotations

import django
from django.conf import settings

if not settings.configured:
    settings.configure(
        DEBUG=False,
        ALLOWED_HOSTS=["127.0.0.1", "localhost", "testserver"],
        ROOT_URLCONF=__name__,
        SECRET_KEY="tests-only",
        MIDDLEWARE=[],
        INSTALLED_APPS=[],
        DATABASES={},
        LOGGING_CONFIG=None,
    )
    django.setup()

from django.core.wsgi import get_wsgi_application
from django.http import JsonResponse
from django.urls import path


def item(request, item_id):
    return JsonResponse({"item": item_id})


def orders(request, name):
    return JsonResponse({"user": name, "orders": []})


def boom(request):
    raise KeyError("missing in a view")


urlpatterns = [
    path("items/<int:item_id>/", item),
    path("users/<str:name>/orders/", orders),
    path("boom/", boom),
]

application = get_wsgi_application()
