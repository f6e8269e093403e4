"""Scrape-driven collection: a scrape asks every process for its records, and waits for them.

Forwarding every worker's records a few times a second would make a scrape current at
the price of every worker's CPU, all the time. Instead, the endpoint's process counts
scrapes in 8 bytes of memory it shares with the processes it forks (`Pulls`: an
anonymous shared mapping, created before any fork, so every forked worker and its
children see its writes; nothing on disk). Each process's collector looks at that
counter every ``live_interval`` (0.1 s: one read of shared memory) through the
exporter's ``live_wanted()``, and only when it moved does it cut a batch and forward it,
an empty one too: the answer. The scrape waits until every connected worker, and the
endpoint's own process, has answered since it asked (at most `PULL_WAIT`, and a quarter
of the timeout Prometheus gives the scrape), then renders what it has.

So a scrape shows what every process recorded up to about ``live_interval`` before it,
and a worker forwards once per scrape, not once per tick. Processes started by exec
(multiprocessing's spawn workers) do not share the mapping: their exporters forward
every `FALLBACK_PERIOD` instead.
"""

from __future__ import annotations

import mmap
import struct
import threading
from collections.abc import Hashable, Iterable
from time import monotonic

__all__ = ["FALLBACK_PERIOD", "LOCAL", "PULL_WAIT", "Pulls"]

PULL_WAIT = 0.5  # seconds a scrape waits for the processes' answers, at most a quarter of its timeout
FALLBACK_PERIOD = 0.5  # seconds between live batches of a process without the shared counter
LOCAL = "local"  # the endpoint's own process, among the sources of answers
_COUNTER = struct.Struct("<Q")


class Pulls:
    """The scrape counter shared with forked processes, and who has answered since when.

    The counter is written by the endpoint's process only (its scrapes) and read
    anywhere; the answers are the endpoint's process's own bookkeeping.
    """

    def __init__(self) -> None:
        self._shared = mmap.mmap(-1, _COUNTER.size)  # MAP_SHARED | MAP_ANONYMOUS: forked children share it
        self._cond = threading.Condition()
        self._answered: dict[Hashable, float] = {}  # source -> when it last delivered a batch
        self.local_polled = 0.0  # when this process's collector last looked (monotonic)

    def generation(self) -> int:
        """How many scrapes have asked so far (read from the shared memory)."""
        return int(_COUNTER.unpack_from(self._shared)[0])

    def request(self) -> float:
        """A scrape asks every process: the counter moves. Returns when it asked."""
        with self._cond:
            _COUNTER.pack_into(self._shared, 0, self.generation() + 1)
            return monotonic()

    def delivered(self, source: Hashable) -> None:
        """*source* (a worker's connection, or `LOCAL`) has handed its records over."""
        with self._cond:
            self._answered[source] = monotonic()
            self._cond.notify_all()

    def forget(self, source: Hashable) -> None:
        """*source* is gone (a worker's connection closed): nobody waits for it any more."""
        with self._cond:
            self._answered.pop(source, None)
            self._cond.notify_all()

    def wait(self, since: float, sources: Iterable[Hashable], deadline: float) -> bool:
        """Wait until every one of *sources* has delivered after *since*, or until *deadline*."""
        waiting = list(sources)
        with self._cond:
            while True:
                late = [s for s in waiting if s in self._answered or s == LOCAL]
                if all(self._answered.get(s, 0.0) >= since for s in late):
                    return True
                remaining = deadline - monotonic()
                if remaining <= 0:
                    return False
                self._cond.wait(remaining)
