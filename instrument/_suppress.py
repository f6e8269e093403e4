"""Marks threads whose own activity must not be instrumented (the exporters' threads).

Integrations check `suppressed()` before recording, so an exporter's HTTP requests or
database calls never show up as the application's.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager

_local = threading.local()


def suppressed() -> bool:
    """True on a thread (or in a block) whose calls integrations must not record."""
    return getattr(_local, "depth", 0) > 0


def suppress_thread() -> None:
    """Suppress instrumentation for the rest of the calling thread's life."""
    _local.depth = getattr(_local, "depth", 0) + 1


@contextmanager
def suppressing() -> Iterator[None]:
    """Suppress instrumentation for the duration of the block on the calling thread."""
    _local.depth = getattr(_local, "depth", 0) + 1
    try:
        yield
    finally:
        _local.depth -= 1
