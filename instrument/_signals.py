"""SIGTERM: export what was recorded, then end exactly as the default disposition would.

Kubernetes, systemd and ``docker stop`` stop a service with SIGTERM. Its default
disposition ends the process at once, without ``atexit``, so the records of the last
interval would be lost. With ``flush_on_sigterm`` (set by ``instrument run``) and only
while SIGTERM still has its default disposition, a handler lets requests whose response
has started to go out finish and be recorded, flushes, all within ``exit_timeout``,
restores the default disposition and sends SIGTERM again: the
process ends killed by SIGTERM (status 143 in a shell, -15 for `subprocess`), as it
would have uninstrumented. Handlers run on the main thread, which may itself be cutting a
batch at that moment (a server flushing as it stops, terminated by its parent meanwhile):
the handler then waits for that cut to end, or the batch being cut would be lost.

A program's own handler always wins: one installed before (the disposition is then not
the default, or is a C server's, which Python reports as None) means this one is never
installed; one installed after replaces this one, and runs alone. An ignored SIGTERM
stays ignored. Python only lets the main thread set handlers, so elsewhere nothing is
installed (with one warning).
"""

from __future__ import annotations

import os
import signal
import threading
import time
from collections.abc import Callable
from typing import Any

from . import _log

__all__ = ["apply", "installed", "register_pending"]


_pending: list[Callable[[], int]] = []


def register_pending(count: Callable[[], int]) -> None:
    """Before its flush, the handler waits (within ``exit_timeout``) while *count()* is not 0:
    records about to be made, such as WSGI requests whose response is going out."""
    _pending.append(count)


def _nothing_to_flush(timeout: float) -> None:
    """Before the runtime hands over its flush."""


def _never_busy(action: Callable[[], object]) -> bool:
    """Before the runtime hands over its pipeline's `defer_while_draining`."""
    return False


# What the handler flushes with, and what tells it the main thread it interrupted was cutting
# a batch (it then runs once the cut is over); both set by `apply`, from the runtime.
_flush: Callable[[float], object] = _nothing_to_flush
_defer: Callable[[Callable[[], object]], bool] = _never_busy


def _flush_then_die(signum: int, frame: Any) -> None:
    """The handler: flush within exit_timeout, then let SIGTERM end the process."""
    if _defer(lambda: _flush_then_die(signum, None)):
        return  # it interrupted a cut on this thread: the batch being cut is exported first
    try:
        from ._config import settings

        deadline = time.monotonic() + settings.current.exit_timeout
        while any(count() for count in _pending) and time.monotonic() < deadline:
            time.sleep(0.005)
        _flush(max(0.0, deadline - time.monotonic()))
    finally:
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        os.kill(os.getpid(), signal.SIGTERM)


def installed() -> bool:
    """Whether SIGTERM is handled by instrument's flushing handler right now."""
    return signal.getsignal(signal.SIGTERM) is _flush_then_die


def apply(wanted: bool, flush: Callable[[float], object] | None = None,
          defer: Callable[[Callable[[], object]], bool] | None = None) -> None:
    """Install the handler when *wanted* and SIGTERM has its default disposition; remove
    it (back to the default) when not *wanted* and it is still ours. Main thread only.
    *flush(timeout)* is what the handler calls (the runtime's pipeline flush); *defer(action)*
    runs *action* after a cut the handler interrupted (`Pipeline.defer_while_draining`)."""
    global _flush, _defer
    if flush is not None:
        _flush = flush
    if defer is not None:
        _defer = defer
    if threading.current_thread() is not threading.main_thread():
        # Only where the handler would have been installed: a program with a SIGTERM
        # handler of its own (gunicorn's master and workers) keeps it anyway.
        if wanted and signal.getsignal(signal.SIGTERM) is signal.SIG_DFL:
            _log.warn_once(
                "sigterm-thread",
                "instrument: flush_on_sigterm is set, but instrument started on thread %r and only the "
                "main thread can handle signals; call instrument.configure() from the main thread",
                threading.current_thread().name,
            )
        return
    current = signal.getsignal(signal.SIGTERM)
    if wanted and current is signal.SIG_DFL:
        signal.signal(signal.SIGTERM, _flush_then_die)
    elif not wanted and current is _flush_then_die:
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
