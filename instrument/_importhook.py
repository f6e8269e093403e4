"""Post-import hooks: run a function once a module has been imported, now or later.

`when_imported(name, hook)` runs *hook(module)* right away when *name* is already
imported, otherwise right after its first import completes. It works through one
finder on ``sys.meta_path`` that wraps the real loader of watched modules only, so
nothing is imported early and unwatched imports pay one dict lookup.

The same idea as wrapt's ``when_imported``, without importing wrapt (which imports
asyncio, about 50-90 ms) at interpreter start-up. As wrapt does, the module's
``__loader__`` and ``__spec__.loader`` are set back to the real loader before the
module runs, so code that inspects them sees nothing of this.

Two kinds of module no loader ever runs are noticed by checks the finder makes at
every import: a module another thread is still importing when a hook is registered
(its import uses the real loader; a short-lived thread also polls for its end), and a
module its host program creates without an import (`when_created`: uwsgi's ``uwsgi``).
Where no thread may start (uwsgi's master, before it forks: `hold_threads`), the
checks at every import are all there is.
"""

from __future__ import annotations

import sys
import threading
from collections.abc import Callable, Sequence
from importlib.machinery import ModuleSpec
from types import ModuleType
from typing import Any

from . import _log, _threads

Hook = Callable[[ModuleType], None]

_hooks: dict[str, list[Hook]] = {}
# Modules another thread was still importing when a hook was registered for them: the
# import under way uses the real loader, so a short-lived thread watches them instead
# (and the finder checks them at every import).
_deferred: set[str] = set()
# Modules created without an import, each with the test that says it is ready for its hooks.
_created: dict[str, Callable[[ModuleType], bool]] = {}
_watching = False
_threads_held = False
_lock = threading.RLock()  # guards the four above; never held while a hook or an import runs


def _run(name: str, module: ModuleType, hooks: list[Hook]) -> None:
    for hook in hooks:
        try:
            hook(module)
        except Exception:
            _log.error_once(
                ("import-hook", name, id(hook)),
                "instrument: a hook for module %r failed; the module is left as it is",
                name,
                exc_info=True,
            )


def _fully_imported(module: ModuleType) -> bool:
    spec = getattr(module, "__spec__", None)
    return not getattr(spec, "_initializing", False)


def when_imported(name: str, hook: Hook) -> None:
    """Run ``hook(module)`` once module *name* is imported (immediately if it is)."""
    if name in _created:
        with _lock:
            _hooks.setdefault(name, []).append(hook)
        _check_created()
        return
    module = sys.modules.get(name)
    if module is not None and _fully_imported(module):
        _run(name, module, [hook])
        return
    with _lock:
        _hooks.setdefault(name, []).append(hook)
        if module is not None:
            _deferred.add(name)
    _install_finder()
    _check_deferred()  # the import may have completed meanwhile
    if _deferred:
        _watch_deferred()


def when_created(name: str, hook: Hook, *, ready: Callable[[ModuleType], bool]) -> None:
    """`when_imported` for a module that its host program creates without an import.

    uwsgi makes its ``uwsgi`` module with ``PyImport_AddModule`` and fills it in from C,
    so no finder sees it. From now on every import (of any module) first checks whether
    *name* exists and ``ready(module)`` says it is complete; then *hook* and every other
    hook waiting for *name* run, in the importing thread, before that import goes on (so
    a hook may register hooks for the very module being imported). Runs *hook* at once if
    the module is ready already. Starts no thread.
    """
    with _lock:
        _created[name] = ready
        _hooks.setdefault(name, []).append(hook)
    _install_finder()
    _check_created()


def _check_created() -> None:
    """Run the hooks of modules created without an import that have become ready."""
    if not _created:
        return
    ready_now = []
    with _lock:
        for name, ready in list(_created.items()):
            module = sys.modules.get(name)
            if module is not None and ready(module):
                del _created[name]
                ready_now.append((name, module, _hooks.pop(name, [])))
    for name, module, hooks in ready_now:
        _run(name, module, hooks)


def hold_threads() -> None:
    """Start no thread until `release_threads()` (uwsgi's master: a thread must not be
    running, or hold a lock, when it forks from C). Modules being imported by another
    thread are then checked at each import only; a polling thread already running
    stops within one poll."""
    global _threads_held
    with _lock:
        _threads_held = True


def release_threads() -> None:
    """Threads may start again: poll the modules still awaited from another thread's import."""
    global _threads_held
    with _lock:
        _threads_held = False
    if _deferred:
        _watch_deferred()


def _watch_deferred() -> None:
    """Poll modules being imported by another thread until their import ends (rare)."""
    global _watching
    with _lock:
        if _watching or _threads_held:
            return
        _watching = True

    def watch() -> None:
        global _watching
        import time

        deadline = time.monotonic() + 300.0
        while _deferred and not _threads_held and time.monotonic() < deadline:
            time.sleep(0.01)
            _check_deferred()
        with _lock:
            _watching = False

    try:
        # Every asynchronous signal blocked: the program's threads take them, as without instrument.
        _threads.start(threading.Thread(target=watch, name="instrument-import-watch", daemon=True))
    except RuntimeError:  # interpreter shutting down
        with _lock:
            _watching = False


def _check_deferred() -> None:
    """Notify hooks of deferred modules whose import (on another thread) has completed."""
    if not _deferred:
        return
    with _lock:
        ready = []
        for name in list(_deferred):
            module = sys.modules.get(name)
            if module is None:
                _deferred.discard(name)  # the import failed; a new one goes through the finder
            elif _fully_imported(module):
                _deferred.discard(name)
                ready.append((name, module, _hooks.pop(name, [])))
    for name, module, hooks in ready:
        _run(name, module, hooks)


def discard(name: str, hook: Hook) -> None:
    """Forget a hook that has not run yet."""
    with _lock:
        hooks = _hooks.get(name)
        if hooks and hook in hooks:
            hooks.remove(hook)
            if not hooks:
                del _hooks[name]


def pending() -> dict[str, int]:
    """Modules still awaited, with the number of hooks waiting on each."""
    with _lock:
        return {name: len(hooks) for name, hooks in _hooks.items()}


def _notify(name: str, module: ModuleType) -> None:
    """Run and forget the hooks waiting for *name*, now that *module* is imported."""
    with _lock:
        hooks = _hooks.pop(name, [])
    _run(name, module, hooks)


class _HookedLoader:
    """Delegates to the real loader, then runs the hooks once the module has executed."""

    def __init__(self, loader: Any, name: str) -> None:
        self._loader = loader
        self._name = name

    def __getattr__(self, attribute: str) -> Any:  # get_resource_reader, is_package, ...
        return getattr(self._loader, attribute)

    def create_module(self, spec: ModuleSpec) -> ModuleType | None:
        create = getattr(self._loader, "create_module", None)
        return create(spec) if create is not None else None

    def exec_module(self, module: ModuleType) -> None:
        if getattr(module, "__loader__", None) is self:
            module.__loader__ = self._loader
        spec = getattr(module, "__spec__", None)
        if spec is not None and spec.loader is self:
            spec.loader = self._loader
        self._loader.exec_module(module)
        current = sys.modules.get(self._name)
        if current is not None:  # not a private copy (module_from_spec + exec_module)
            _notify(self._name, current)


class _Finder:
    """On sys.meta_path: for watched names, find the real spec and wrap its loader."""

    def find_spec(
        self, fullname: str, path: Sequence[str] | None, target: ModuleType | None = None
    ) -> ModuleSpec | None:
        if _created:
            _check_created()  # first: its hooks may wait for this very import
        if _deferred:
            _check_deferred()
        if fullname not in _hooks:
            return None
        for finder in sys.meta_path:
            if finder is self or isinstance(finder, _Finder):
                continue
            find = getattr(finder, "find_spec", None)
            if find is None:
                continue
            spec: ModuleSpec | None = find(fullname, path, target)
            if spec is None:
                continue
            if spec.loader is not None and hasattr(spec.loader, "exec_module"):
                spec.loader = _HookedLoader(spec.loader, fullname)  # type: ignore[assignment]
            return spec
        return None


_finder: _Finder | None = None


def _install_finder() -> None:
    global _finder
    with _lock:
        if _finder is None or _finder not in sys.meta_path:
            _finder = _Finder()
            sys.meta_path.insert(0, _finder)
