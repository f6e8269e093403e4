"""Automatic instrumentation: install integrations when their libraries are imported.

>>> import instrument.auto
>>> instrument.auto.install()                       # every integration
>>> instrument.auto.install(include=["requests"])   # or some
>>> instrument.auto.uninstall()                     # put the originals back

`instrument run` calls `install()` at interpreter start-up. Nothing is imported
early: an integration's code is imported when its library is, whether that happens
before or after `install()`. ``INSTRUMENT_DISABLED_INTEGRATIONS`` (or ``exclude``)
skips some. Wherever an integration's identifier is accepted, a group's is too
(``wsgi``: every WSGI server and framework integration).
"""

from __future__ import annotations

import functools
import threading
from collections.abc import Iterable
from types import ModuleType

from . import _importhook
from ._config import settings
from .integrations import REGISTRY, Integration, expand, integrations, load, triggers
from .integrations._failures import failed

__all__ = ["available", "install", "installed", "uninstall"]

_lock = threading.RLock()
_scheduled: dict[str, dict[str, _importhook.Hook]] = {}  # identifier -> trigger module -> hook
_active: dict[str, Integration] = {}


def available() -> list[str]:
    """Every name `install`, `uninstall` and ``--disable`` accept: the identifiers of the
    integrations instrument ships, and of their groups."""
    return sorted(REGISTRY)


def _check(names: Iterable[str], argument: str) -> list[str]:
    if isinstance(names, str):
        raise TypeError(f"{argument} takes a list of integration names, got the string {names!r}")
    checked = list(names)
    unknown = sorted(set(checked) - set(REGISTRY))
    if unknown:
        raise ValueError(
            f"unknown integration(s) {', '.join(map(repr, unknown))} in {argument}; "
            f"known integrations: {', '.join(available())}"
        )
    return checked


def _install_one(identifier: str, module: ModuleType) -> None:
    with _lock:
        waiting = _scheduled.get(identifier, {})
        if waiting.pop(module.__name__, None) is None:
            return  # uninstalled before its library was imported
        if not waiting:
            _scheduled.pop(identifier, None)
        integration = _active.get(identifier)
        if integration is None:
            integration = _active[identifier] = load(identifier)()
    try:
        integration.install(module)
    except Exception:
        failed(identifier, "install", f"{module.__name__} runs uninstrumented")


def install(include: Iterable[str] | None = None, exclude: Iterable[str] | None = None) -> list[str]:
    """Schedule integrations: each installs when its library is (or has been) imported.

    *include* defaults to all; *exclude* and ``disabled_integrations`` are left out.
    Returns the identifiers scheduled or already installed. Calling it again is safe.
    """
    chosen = integrations() if include is None else expand(_check(include, "include"))
    skipped = expand(_check(exclude or (), "exclude")) + expand(list(settings.current.disabled_integrations))
    selected = [name for name in chosen if name not in skipped]
    for identifier in selected:
        for module in triggers(identifier):
            with _lock:
                waiting = _scheduled.setdefault(identifier, {})
                done = identifier in _active and _active[identifier].installed_for(module)
                if module in waiting or done:
                    continue
                hook = functools.partial(_install_one, identifier)
                waiting[module] = hook
            _importhook.when_imported(module, hook)
    return sorted(selected)


def uninstall(names: Iterable[str] | None = None) -> None:
    """Undo `install()` for *names* (default all): restore originals, drop pending hooks."""
    targets = integrations() if names is None else expand(_check(names, "names"))
    for identifier in targets:
        with _lock:
            waiting = _scheduled.pop(identifier, {})
            integration = _active.pop(identifier, None)
        for module, hook in waiting.items():
            _importhook.discard(module, hook)
        if integration is not None:
            integration.uninstall()


def installed() -> list[str]:
    """Identifiers of the integrations currently patched into their libraries."""
    with _lock:
        return sorted(name for name, integration in _active.items() if integration.installed)
