"""Marks threads whose own activity must not be instrumented (the exporters' threads).

Integrations check `suppressed()` before recording, so an exporter's HTTP requests or
database calls never show up as the application's.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager


class _Depth(threading.local):
    # A class default, so a thread that never suppressed reads 0 without the
    # AttributeError that `getattr(local, name, 0)` raises and catches (about 1 µs).
    depth = 0


_local = _Depth()


def suppressed() -> bool:
    """True on a thread (or in a block) whose calls integrations must not record."""
    return _local.depth > 0


def suppress_thread() -> None:
    """Suppress instrumentation for the rest of the calling thread's life."""
    _local.depth += 1


@contextmanager
def suppressing() -> Iterator[None]:
    """Suppress instrumentation for the duration of the block on the calling thread."""
    _local.depth += 1
    try:
        yield
    finally:
        _local.depth -= 1
