"""``http.server.active_requests``: the requests in progress in this process, per method and scheme.

OpenTelemetry makes it an up-down counter; it is kept here as a count that only the
request path changes and exported as a gauge whose value is that count, marked
additive: each worker's count is its share of the service's (the Prometheus endpoint
sums the live workers).
"""

from __future__ import annotations

from collections import deque

from ..._metrics import GAUGE, Series, declare_series

ACTIVE = "http.server.active_requests"


class ActiveRequests:
    """Requests in progress for one (method, scheme): a count kept without a lock.

    The count is the length of a deque: ``append`` and ``pop`` are single C calls, so
    concurrent requests never lose an update (with or without the GIL: free-threaded
    builds lock the deque per operation). After each change the count is published to
    the gauge series; a thread preempted between reading and publishing could publish
    a stale value, so it reads the count again after publishing and repeats until the
    two agree. The last thread to publish therefore leaves the current count, and the
    gauge never sticks at a stale value once requests stop.
    """

    __slots__ = ("_entries", "_series")

    def __init__(self, series: Series) -> None:
        self._entries: deque[None] = deque()
        self._series = series

    def enter(self) -> None:
        self._entries.append(None)
        self._publish()

    def leave(self) -> None:
        try:
            self._entries.pop()
        except IndexError:  # each request leaves once, so this cannot happen: stay at zero
            pass
        self._publish()

    def _publish(self) -> None:
        entries = self._entries
        series = self._series
        while True:
            count = len(entries)
            series.value = count
            series.changed = True
            if len(entries) == count:
                break


_counts: dict[tuple[str, ...], ActiveRequests] = {}


def active_requests(method: str, scheme: str) -> ActiveRequests:
    """The count for (*method*, *scheme*), its series declared on first use."""
    found = _counts.get((ACTIVE, method, scheme))
    if found is None:
        found = active_count(ACTIVE, {"http.request.method": method, "url.scheme": scheme}, "{request}")
    return found


def active_count(name: str, tags: dict[str, str], unit: str) -> ActiveRequests:
    """The count of what is in progress for gauge *name* and *tags* (websocket sessions too),
    its series declared on first use."""
    key = (name, *tags.values())
    found = _counts.get(key)
    if found is None:
        series = declare_series(name, GAUGE, tags, unit)
        series.metric.additive = True
        found = _counts.setdefault(key, ActiveRequests(series))
    return found


def forget() -> None:
    """Drop every count, so the next request declares its series again (tests re-declaring the metric)."""
    _counts.clear()
