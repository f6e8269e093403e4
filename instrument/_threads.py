"""Instrument's own threads start with every asynchronous signal blocked.

The kernel hands a signal sent to the process (``kill``: SIGTERM from Kubernetes,
SIGINT, SIGHUP, SIGUSR1...) to any one thread that does not block it. Python runs its
handlers in the main thread only, and when the kernel picks another thread, a main
thread blocked in a system call (``sys.stdin.read()``, ``select``, ``accept``) is not
interrupted: the program's handler waits until that call returns on its own, possibly
never. A program without threads never meets this, so instrument's threads must not be
candidates: they block every signal but the synchronous faults, which the kernel sends
to the faulting thread anyway. Seen in our own tests: 1 run in 5 of the suite, a
program under ``instrument run`` ignored SIGTERM while reading stdin.

Threads started by these threads (a threaded HTTP server's request threads) inherit
the mask. uwsgi's stop-signal thread (`integrations/wsgi/uwsgi.py`) waits for SIGINT and
SIGTERM with ``sigwait``, which needs them blocked too.
"""

from __future__ import annotations

import signal
import threading

__all__ = ["ASYNCHRONOUS", "start"]

# Signals the kernel sends to the thread that caused them, and those no mask can block.
_SYNCHRONOUS = {
    getattr(signal, name) for name in ("SIGSEGV", "SIGBUS", "SIGFPE", "SIGILL", "SIGTRAP", "SIGSYS", "SIGKILL",
                                       "SIGSTOP") if hasattr(signal, name)
}
ASYNCHRONOUS: frozenset[int] = frozenset(
    set(signal.valid_signals()) - _SYNCHRONOUS if hasattr(signal, "valid_signals") else ()
)


def start(thread: threading.Thread) -> None:
    """``thread.start()``, the new thread inheriting a mask that blocks `ASYNCHRONOUS`.

    The mask is the calling thread's for the moment of the start, then restored: a
    signal arriving meanwhile stays pending and is handled as soon as it is restored.
    Raises what ``Thread.start`` raises (RuntimeError at interpreter shutdown).
    """
    if not ASYNCHRONOUS or not hasattr(signal, "pthread_sigmask"):
        thread.start()
        return
    previous = signal.pthread_sigmask(signal.SIG_BLOCK, ASYNCHRONOUS)
    try:
        thread.start()
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, previous)
