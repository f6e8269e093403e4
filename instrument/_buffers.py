"""Per-thread record buffers: the only shared structure the hot path writes to.

How records move without a lock and without being lost
------------------------------------------------------
* Each (thread, series) pair has one plain list, kept in the series' `threading.local`
  (``series.tls.buf``) and published in `_registry`. Only its thread appends to it.
* The collector never replaces or clears the list of a live thread. It reads
  ``n = len(buf)``, copies ``buf[:n]`` and then deletes exactly that prefix with
  ``del buf[:n]``. A record appended meanwhile lands at index >= n and stays for the
  next drain. The owner only ever appends at the end; the collector only ever removes
  a prefix it has already copied; so no record is seen twice or dropped.
* ``list.append``, ``buf[:n]`` and ``del buf[:n]`` are each a single operation on the
  list object. With the GIL each is one C call that does not release it. In
  free-threaded CPython (3.13t) each takes the list's per-object lock. Neither build
  needs the three to be atomic *together*: that is what the prefix protocol is for.
* Re-entrancy: a signal handler, ``__del__``, GC callback or logging handler that
  records while its thread is mid-record only performs another ``append``; there is
  no lock to deadlock on and no multi-step state to corrupt. Registration uses
  ``dict.setdefault`` so a re-entrant first record ends up on the same list.
* A list is retired only after its thread has exited: each thread holds a token in a
  `threading.local`; when the thread ends CPython clears its locals, the token dies
  and the collector, seeing the dead weak reference *before* it drains the list,
  drains it one last time and forgets it.

Memory bound
------------
The hot path compares the list's length with `SLOW_AT` (one `len()`), a threshold
below both caps. Past it, the slow path `overflow` wakes the collector and appends
only while the thread holds fewer than ``buffer_size`` un-aggregated records and all
threads together fewer than ``max_pending``; otherwise the record is dropped and
counted in `DROPPED`. A list below `SLOW_AT` is never checked, so a thread recording
into S series holds at most ``buffer_size + (S - 1) * SLOW_AT`` records while the
collector cannot drain (docs/design.md, "Memory", gives the bound for all threads).
"""

from __future__ import annotations

import threading
import weakref
from collections.abc import Callable
from itertools import count as _count
from typing import Any

from ._metrics import Series


class DropCounter:
    """Counts events from any thread, re-entrantly, without a lock.

    ``next()`` on `itertools.count` is one C call: atomic under the GIL, and in
    free-threaded builds (3.13t) its step is a compare-and-swap on the counter, so no
    increment is lost either (`tests/test_buffers.py` counts from 8 threads at once on
    every interpreter tox runs, py313t included).
    """

    __slots__ = ("_reads", "_seq", "_taken")

    def __init__(self) -> None:
        self._seq = _count()
        self._reads = 0  # next() calls made by take(), which advance _seq too
        self._taken = 0  # events already returned by take()

    def add(self) -> None:
        next(self._seq)

    def take(self) -> int:
        """Events counted since the last take(). One caller at a time (the collector)."""
        events = next(self._seq) - self._reads
        self._reads += 1
        delta = events - self._taken
        self._taken = events
        return delta


class _ThreadRecords:
    """Held in a thread-local: its lifetime is the thread's."""

    __slots__ = ("__weakref__", "countdown", "lists", "others")

    def __init__(self) -> None:
        self.lists: list[list[Any]] = []
        # The slow path's view of the other threads' pending records, refreshed every
        # RECOUNT_EVERY slow-path records (and after each drain, via countdown = 0).
        self.others = 0
        self.countdown = 0


_local = threading.local()
_registry: dict[int, tuple[weakref.ref[_ThreadRecords], Series, list[Any]]] = {}

DROPPED = DropCounter()

_thread_cap = 262_144
_global_cap = 1_048_576

# Called (once per thread and series) when a list is first published, so that the
# collector starts lazily on the first record. Set by the runtime (`set_limits`).
on_first_record: Callable[[], None] | None = None

# The collector sleeps on this lock; `wake()` releases it. A Lock (unlike an Event)
# can be released by any thread without being acquired first and its release never
# blocks, so waking is safe from a signal handler or while any lock is held.
_wake_lock = threading.Lock()
_wake_lock.acquire()
_wake_pending = False


def slow_threshold(buffer_size: int, max_pending: int) -> int:
    """List length at which the hot path hands over to `overflow`.

    Well below both caps, so that the caps are checked before a few lists can hold
    more than them; high enough (up to 65536) that a thread recording flat out does
    not reach it between two drains of a busy collector, which under the GIL come
    every switch interval (5 ms, about 10,000 records).
    """
    return max(1, min(65536, buffer_size // 4, max_pending // 16))


def set_limits(buffer_size: int, max_pending: int, first_record_hook: Callable[[], None] | None = None) -> None:
    """The caps, and the start hook (called by the runtime only)."""
    global _thread_cap, _global_cap, on_first_record
    on_first_record = first_record_hook
    _thread_cap = buffer_size
    _global_cap = max_pending


def has_lists() -> bool:
    """Whether any thread has recorded into any series (in this process, since the fork)."""
    return bool(_registry)


def _thread_records() -> _ThreadRecords:
    try:
        return _local.records  # type: ignore[no-any-return]
    except AttributeError:
        pass
    records: _ThreadRecords = _local.__dict__.setdefault("records", _ThreadRecords())
    return records


def register(series: Series) -> list[Any]:
    """Create (or, if a re-entrant call won, find) this thread's list for *series*."""
    new: list[Any] = []
    buf: list[Any] = series.tls.__dict__.setdefault("buf", new)
    if buf is new:
        records = _thread_records()
        records.lists.append(buf)
        _registry[id(buf)] = (weakref.ref(records), series, buf)
        hook = on_first_record
        if hook is not None:
            hook()
    return buf


def wake() -> None:
    """Ask the collector to drain now. Never blocks, never raises."""
    global _wake_pending
    if not _wake_pending:
        _wake_pending = True
        try:
            _wake_lock.release()
        except RuntimeError:  # already released: a wake is pending anyway
            pass


def wait_for_wake(timeout: float) -> bool:
    """Collector side: sleep until `wake()` or *timeout* seconds."""
    global _wake_pending
    woke = _wake_lock.acquire(timeout=max(0.0, timeout))
    _wake_pending = False
    return woke


RECOUNT_EVERY = 64


def overflow(buf: list[Any], value: object) -> None:
    """Slow path of a record whose list reached the threshold: wake, then cap or drop.

    The thread's own pending records are counted exactly; the other threads' are
    recounted every RECOUNT_EVERY calls, so the global cap can be passed by at most
    that many records per thread. Counters here are owned by this thread; a
    re-entrant call may lose an update of ``countdown``, which only shifts a recount.
    """
    wake()
    records: _ThreadRecords | None = getattr(_local, "records", None)
    if records is None:  # a list that was never registered (cannot happen); keep it
        buf.append(value)
        return
    mine = sum(map(len, records.lists))
    if records.countdown <= 0:
        records.others = pending() - mine
        records.countdown = RECOUNT_EVERY
    records.countdown -= 1
    if mine < _thread_cap and mine + records.others < _global_cap:
        buf.append(value)
    else:
        DROPPED.add()


def pending() -> int:
    """Records waiting in all buffers (approximate while threads record)."""
    return sum(len(buf) for _, _, buf in list(_registry.values()))


def drain(consume: Callable[[Series, list[Any]], None]) -> int:
    """Hand every buffered record to ``consume(series, values)``; return how many.

    Called by one thread at a time (the pipeline's drain lock).
    """
    moved = 0
    for key, (ref, series, buf) in list(_registry.items()):
        # Liveness is read before the list: if the thread was already gone, nothing
        # can be appended after the copy below, so the entry can be dropped safely.
        owner = ref()
        alive = owner is not None
        if owner is not None:
            owner.countdown = 0  # its view of the other threads is stale now
        del owner
        n = len(buf)
        if n:
            values = buf[:n]
            del buf[:n]
            consume(series, values)
            moved += n
        if not alive:
            del _registry[key]
    return moved


def reset_after_fork() -> None:
    """In a forked child: forget the parent's records (the parent exports them).

    The forking thread's lists are unhooked from its thread-locals so that its next
    record registers again, which also starts the child's own collector.
    """
    global _wake_lock, _wake_pending, DROPPED
    me = getattr(_local, "records", None)
    for ref, series, _ in list(_registry.values()):
        if me is not None and ref() is me:
            series.tls.__dict__.pop("buf", None)
    _registry.clear()
    if me is not None:
        me.lists.clear()
    _wake_lock = threading.Lock()
    _wake_lock.acquire()
    _wake_pending = False
    DROPPED = DropCounter()
