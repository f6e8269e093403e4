"""Django's route and exception hooks, shared by wsgi.django and asgi.django: installed once
while either integration is, removed when the last one goes, in whichever order."""

from __future__ import annotations

import pytest

import instrument.auto

from ..helpers import require_module

require_module("django")
from . import wsgi_django  # noqa: E402, F401  (configures Django)


def hooked():
    from django.core.handlers import base, exception

    return hasattr(base.BaseHandler.resolve_request, "__wrapped__"), hasattr(
        exception.response_for_exception, "__wrapped__")


@pytest.fixture(autouse=True)
def handlers_imported():
    import django.core.handlers.asgi
    import django.core.handlers.wsgi  # noqa: F401

    yield
    instrument.auto.uninstall()


class TestSharedDjangoHooks:
    @pytest.mark.parametrize("first", ["wsgi.django", "asgi.django"])
    def test_hooks_stay_until_the_last_integration_is_uninstalled(self, first):
        """Uninstalling one of the two leaves the hooks for the other; the second restores the originals."""
        from django.core.handlers import base

        original = base.BaseHandler.resolve_request
        instrument.auto.install(include=["wsgi.django", "asgi.django"])
        assert (True, True) == hooked()
        instrument.auto.uninstall([first])
        assert (True, True) == hooked()
        instrument.auto.uninstall(["wsgi.django", "asgi.django"])
        assert (False, False) == hooked()
        assert original is base.BaseHandler.resolve_request
