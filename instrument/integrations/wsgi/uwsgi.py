"""uwsgi: the applications it loads, wrapped, and what instrument needs from a server that
embeds Python and forks from C.

* **Applications.** `UwsgiIntegration` (``wsgi.uwsgi``) wraps the application named by
  ``--module``/``--wsgi``/``--mount`` in a `Middleware` when its module is imported
  (`applications`). An application loaded with ``--wsgi-file`` is run without an
  import: a Flask or Django app is still measured through the framework, a bare
  callable needs `Middleware` by hand.
* **Forking.** uwsgi forks its workers from C, by default without CPython's fork
  protocol (``--py-call-uwsgi-fork-hooks`` and ``--py-call-osafterfork`` add it):
  ``os.register_at_fork`` handlers do not run, and a Python thread holding the GIL
  or importing a module at that moment leaves the worker hung, or with a
  half-imported module. So instrument starts no thread in the process uwsgi forks
  from (the master, where the application is loaded before the fork): records made
  there stay in their buffers and, as uwsgi runs no exit hook in the master, are
  never exported (import-time work, normally). Each worker resets the pipeline
  (``after_fork_in_child()``, unless the fork options ran it already) from uwsgi's
  ``post_fork_hook``, chaining a hook already set (or first in ``uwsgidecorators``'
  chain, which replaces the hook when it is imported); its collector then starts
  with its first record. Should the hook not have run in a worker, its first new
  series does the same (`_start_if_forked`).
* **Finding it.** uwsgi creates its ``uwsgi`` module with ``PyImport_AddModule``
  after start-up, not through an import, so no post-import hook sees it. `watch()`,
  called at start-up when the executable is uwsgi (`_uwsgi_watch`), holds the threads
  back at once and has `_importhook.when_created` look for the module at every import:
  at the first import after it appears (uwsgi importing the application, normally)
  `prepare` runs, once, and so do the post-import hooks waiting for ``uwsgi`` (this
  integration's). The polling thread of `_importhook` is held back with the others.
* **Threads.** Without ``--enable-threads`` (older uwsgi releases; current 2.0.x ones
  always enable threads and keep the option as a stub) Python threads stall while a
  worker waits for requests, so the collector and exporters cannot run: one warning.
* **Exit.** A worker that ends normally calls ``uwsgi.atexit`` and then finalizes
  Python (which runs ``atexit`` handlers) unless ``--skip-atexit-teardown``; the
  pipeline is flushed from ``uwsgi.atexit`` so it does not depend on the latter. With
  ``--skip-atexit`` a worker stopped by a signal ends with ``_exit()`` and nothing can
  flush: one warning.

All but the first keep instrument's own pipeline correct and record nothing, so they
stay in place after ``instrument.auto.uninstall()`` and run whether or not
``wsgi.uwsgi`` is enabled.
"""

from __future__ import annotations

import os
import signal
import sys
import threading
import time
from collections.abc import Callable
from types import ModuleType
from typing import Any

from ... import _importhook, _log, _threads
from .. import Integration
from ._middleware import wrap
from ._request import guard_stop_signals

# Module state; a forked worker inherits it from the master.
_origin: int | None = None  # pid of the process uwsgi forks from (where we first saw uwsgi)
_prepared = False  # `prepare` ran: post-fork and exit hooks are in the uwsgi module
_reset_in: int | None = None  # pid of the worker whose pipeline was last reset
_at_fork_ran_in: int | None = None  # pid of a worker in which os.register_at_fork handlers ran
_stop_guard: StopGuard | None = None  # this worker's (set after the fork, in `_guard_stop_signals`)


def watch() -> None:
    """At start-up inside uwsgi: hold threads back now, `prepare` once uwsgi's module exists.

    Idempotent. uwsgi fills its module in from C after creating it: it is ready once it
    has ``opt``.
    """
    _hold_threads()
    _importhook.when_created("uwsgi", prepare, ready=lambda module: hasattr(module, "opt"))


# --- which application uwsgi loads ------------------------------------------------------


def _option(uwsgi: ModuleType, name: str) -> list[str]:
    """The values of uwsgi option *name* (``uwsgi.opt`` holds bytes, or a list when repeated)."""
    value = getattr(uwsgi, "opt", {}).get(name)
    values = value if isinstance(value, list) else [value]
    return [v.decode("utf-8", "replace") if isinstance(v, bytes) else v for v in values if isinstance(v, (bytes, str))]


def applications(uwsgi: ModuleType) -> list[tuple[str, str, bool]]:
    """(module, attribute, is_factory) of each application uwsgi loads from a module.

    From ``--module``/``--wsgi`` (``module``, ``module:callable`` or
    ``module:factory()``, the callable defaulting to ``--callable`` or
    ``application``) and ``--mount MOUNTPOINT=module:callable``.
    """
    default = (_option(uwsgi, "callable") or ["application"])[-1]
    specs = _option(uwsgi, "module") + _option(uwsgi, "wsgi")
    for mount in _option(uwsgi, "mount"):
        spec = mount.partition("=")[2]
        if ":" in spec and not spec.endswith((".py", ".wsgi", ".ini")):
            specs.append(spec)
    found = []
    for spec in specs:
        module, _, attribute = spec.partition(":")
        attribute = attribute or default
        factory = attribute.endswith("()")
        attribute = attribute[:-2] if factory else attribute
        if all(part.isidentifier() for part in module.split(".")) and attribute.isidentifier():
            found.append((module, attribute, factory))
    return found


# --- threads, fork, exit -----------------------------------------------------------------


def _hold_threads() -> None:
    """Start no thread in this process until it is a forked worker: neither the collector nor
    the exporters, nor the import hooks' polling thread."""
    global _origin
    from ..._runtime import RUNTIME

    if RUNTIME.held:
        return
    if not RUNTIME.hold(_start_if_forked):
        _log.warn_once(
            ("uwsgi", "thread-before-fork"),
            "instrument: its background thread was already running when uwsgi loaded the "
            "application, and a worker forked while it runs can hang; start uwsgi under "
            "`instrument run`, or with --lazy-apps",
        )
        return
    if _origin is None:
        _origin = os.getpid()
    _importhook.hold_threads()


def _start_if_forked() -> None:
    """Stands in for the collector's start while threads are held: starts it in a worker only.

    Reached in a worker whose post-fork hook did not run (the first record of a new
    series): the worker resets and starts here instead.
    """
    if os.getpid() != _origin:
        from ..._runtime import RUNTIME

        after_fork()
        RUNTIME.ensure_started()


def _release_threads() -> None:
    from ..._runtime import RUNTIME

    RUNTIME.release()
    _importhook.release_threads()


def _mark_at_fork() -> None:
    global _at_fork_ran_in
    _at_fork_ran_in = os.getpid()


def after_fork() -> None:
    """In a uwsgi worker: reset the pipeline once if it was forked, and let its threads run."""
    global _reset_in
    pid = os.getpid()
    forked = pid not in (_origin, _reset_in)  # _origin: worker 1 without --master was not forked
    if forked:
        _reset_in = pid
        if _at_fork_ran_in != pid:  # else the fork options ran the pipeline's own handler
            from ..._pipeline import PIPELINE

            PIPELINE.after_fork_in_child()
    _release_threads()
    if forked:
        _guard_stop_signals()


# Signals on which a uwsgi worker calls exit() from its C signal handler.
_STOP_SIGNALS = frozenset({signal.SIGINT, signal.SIGTERM})


class StopGuard:
    """Holds uwsgi's stop signals back while a request is served, so it is exported.

    uwsgi stops a worker (SIGINT: "kill", SIGTERM: "brutal reload") by calling exit()
    from its C signal handler, and then skips ``uwsgi.atexit`` (so the exit flush) when
    the worker is busy with a request: a request still closing a response its client
    already had cost every record made since the last export, other requests' too.

    - The WSGI middleware blocks these signals in the serving thread for the length of
      each request (`hold`). They stay blocked until uwsgi has closed the client's
      connection and calls its after-request hook (``uwsgi.after_req_hook``, ours:
      `after_request`); a stop that came meanwhile is pending then: the pipeline is
      flushed, the signals are unblocked and uwsgi's own handler runs in that thread,
      as it would have. Unblocking at the end of the WSGI response instead (as before
      the hook is known to run: the first request, or an application that replaced the
      hook) left the client waiting for uwsgi to close its connection while a stop
      could end the worker as busy, so without the exit flush: a client that stops
      the server as soon as it has its response lost that worker's records 3 times in
      15 under load.
    - An idle worker's main thread has them unblocked: the signal is handled at once,
      as without instrument, and ``uwsgi.atexit`` flushes.
    - A thread of ours waits for the signals (`sigwait`), which the kernel hands it
      only while the serving thread holds them: it flushes at once what finished
      requests recorded, makes the signal pending again for the serving thread, and if
      that request is not over within ``exit_timeout``, takes the signal itself, so
      uwsgi's handler ends the worker then (exit hooks skipped, as uwsgi does for a
      busy worker). A stopped worker thus outlives its signal by at most
      ``exit_timeout``, and only while it serves a request.
    - Instrument's other threads are started with the signals blocked, so the kernel
      never hands them one.

    Left: workers with ``--threads`` (an idle thread takes the signal while another
    serves a request, as without this guard), and a signal in the moment between
    `after_request` and uwsgi marking the request done (its request log line, with
    logging on, and freeing the request).
    """

    def __init__(self) -> None:
        self._local = threading.local()
        self.after_request_runs = False  # uwsgi calls `after_request` (it read our hook)

    def hold(self) -> None:
        depth = getattr(self._local, "depth", 0)
        self._local.depth = depth + 1
        if depth == 0:
            signal.pthread_sigmask(signal.SIG_BLOCK, _STOP_SIGNALS)

    def release(self) -> None:
        depth = getattr(self._local, "depth", 1) - 1
        self._local.depth = depth
        if depth == 0 and not self.after_request_runs:
            self._unblock()

    def after_request(self) -> None:
        """uwsgi is done with the request and has closed the client's connection."""
        self.after_request_runs = True
        if getattr(self._local, "depth", 0) == 0:
            self._unblock()

    def _unblock(self) -> None:
        try:
            if _STOP_SIGNALS & signal.sigpending():  # a stop came while serving: export first
                _flush()
        finally:
            signal.pthread_sigmask(signal.SIG_UNBLOCK, _STOP_SIGNALS)

    def watch(self) -> None:
        """The waiting thread's body (see the class docstring)."""
        signum = signal.sigwait(_STOP_SIGNALS)
        _flush()
        os.kill(os.getpid(), signum)  # pending again: the serving thread takes it at release()
        time.sleep(_exit_timeout())
        signal.pthread_sigmask(signal.SIG_UNBLOCK, {signum})  # still serving: end it here


def _exit_timeout() -> float:
    from ..._config import settings

    return settings.current.exit_timeout


def _flush() -> None:
    from ..._pipeline import PIPELINE

    PIPELINE.flush(_exit_timeout())


def _guard_stop_signals() -> None:
    """In a worker: start instrument's threads with the stop signals blocked, and have the
    WSGI middleware hold them back during requests (see `StopGuard`)."""
    if not hasattr(signal, "pthread_sigmask"):
        return
    from ..._runtime import RUNTIME

    global _stop_guard
    guard = StopGuard()
    previous = signal.pthread_sigmask(signal.SIG_BLOCK, _STOP_SIGNALS)
    try:
        RUNTIME.start()  # the collector and exporter threads inherit the blocked mask
        _threads.start(threading.Thread(target=guard.watch, name="instrument-uwsgi-stop", daemon=True))
    except RuntimeError:  # no thread can start: leave uwsgi's signals alone
        return
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, previous)
    _stop_guard = guard
    guard_stop_signals(guard)


def _after_request() -> None:
    """``uwsgi.after_req_hook``: tell this worker's `StopGuard` (if any) the request is over."""
    guard = _stop_guard
    if guard is not None:
        guard.after_request()


def _chain_into_decorators(decorators: ModuleType) -> None:
    chain = getattr(decorators, "postfork_chain", None)
    if isinstance(chain, list) and after_fork not in chain:
        chain.insert(0, after_fork)  # first: later postfork functions may record


def _in_order(first: Callable[[], Any] | None, second: Callable[[], Any] | None) -> Callable[[], None]:
    """One hook calling *first* then *second* (either may be None), the second even if the first raised."""

    def hook() -> None:
        try:
            if first is not None:
                first()
        finally:
            if second is not None:
                second()

    return hook


def _flush_at_exit() -> None:
    from ..._pipeline import PIPELINE

    PIPELINE.at_exit()


def prepare(uwsgi: Any) -> None:
    """Once per process tree: hook uwsgi's fork and exit, check its options, hold threads in
    the master (or, found first inside a worker, with ``--lazy-apps``, start as a worker).

    Run by `watch` when uwsgi's module appears, or by `UwsgiIntegration` when instrument
    is installed from the application's code; whichever comes second does nothing.
    """
    global _prepared, _origin
    if _prepared:
        return
    _prepared = True
    if _origin is None:
        _origin = os.getpid()
    _install_hooks(uwsgi)
    if getattr(uwsgi, "worker_id", lambda: 0)() == 0:  # loading the application, before the fork
        _hold_threads()
    else:  # found inside a worker (--lazy-apps)
        after_fork()


def _install_hooks(uwsgi: Any) -> None:
    if hasattr(os, "register_at_fork"):
        os.register_at_fork(after_in_child=_mark_at_fork)
    decorators = sys.modules.get("uwsgidecorators")
    if decorators is not None:
        _chain_into_decorators(decorators)
    else:
        # First: later post-fork functions may record.
        uwsgi.post_fork_hook = _in_order(after_fork, getattr(uwsgi, "post_fork_hook", None))
        _importhook.when_imported("uwsgidecorators", _chain_into_decorators)
    # The application's own exit hook first: it may still record.
    uwsgi.atexit = _in_order(getattr(uwsgi, "atexit", None), _flush_at_exit)
    # Read by uwsgi once its applications are loaded; called after each request.
    uwsgi.after_req_hook = _in_order(getattr(uwsgi, "after_req_hook", None), _after_request)

    if not getattr(uwsgi, "has_threads", True):
        _log.warn_once(
            ("uwsgi", "threads"),
            "instrument: uwsgi runs without --enable-threads: Python threads stall while a worker "
            "waits for requests, so instrument cannot aggregate or export metrics reliably; "
            "start uwsgi with --enable-threads",
        )
    if getattr(uwsgi, "opt", {}).get("skip-atexit"):
        _log.warn_once(
            ("uwsgi", "skip-atexit"),
            "instrument: uwsgi runs with --skip-atexit: a worker stopped by a signal exits at once "
            "and loses the metrics recorded since its last export (up to one export interval); "
            "drop --skip-atexit (--skip-atexit-teardown is fine) to flush them",
        )


# --- the integration ---------------------------------------------------------------------


class UwsgiIntegration(Integration):
    """Wraps the applications uwsgi loads from modules (`applications`) once each is imported."""

    identifier = "wsgi.uwsgi"
    distribution = "uwsgi"
    min_version = (2, 0, 21)

    def __init__(self) -> None:
        super().__init__()
        self._waiting: list[tuple[str, Callable[[ModuleType], None]]] = []

    def setup(self, module: ModuleType) -> None:
        prepare(module)  # done already when `watch` found the module first
        for target, attribute, factory in applications(module):
            self._wrap_when_imported(target, attribute, factory)

    def _wrap_when_imported(self, module_name: str, attribute: str, factory: bool) -> None:
        """Wrap ``module_name.attribute`` (or what that factory returns) once it is imported."""

        def make(original: Any) -> Any:
            if not factory:
                return wrap(original)

            def create(*args: Any, **kwargs: Any) -> Any:
                return wrap(original(*args, **kwargs))

            return create

        def hook(imported: ModuleType) -> None:
            if hasattr(imported, attribute):
                self.patch(imported, attribute, make)

        self._waiting.append((module_name, hook))
        _importhook.when_imported(module_name, hook)

    def uninstall(self) -> None:
        """Restore every patched attribute and forget hooks still waiting for an import.

        uwsgi's fork and exit hooks stay: they keep instrument's own pipeline correct.
        """
        while self._waiting:
            _importhook.discard(*self._waiting.pop())
        super().uninstall()
