"""asyncio event-loop lag: how late each running loop runs a callback that was due.

A blocked event loop (a synchronous call in a coroutine, a CPU-bound handler) delays
every request it serves, and no latency histogram of a single call shows it. While a
loop runs (``BaseEventLoop.run_forever``, which ``asyncio.run``, ``run_until_complete``
and uvicorn's asyncio loop go through), a timer callback is due every `INTERVAL`
seconds; when it runs, how late it is goes to the distribution
``asyncio.event_loop.lag`` (seconds, a timer): 0 for an idle loop, the length of the
block for a loop that was blocked. One callback every 100 ms costs nothing measurable.

uvloop's loops are sampled the same way: ``uvloop.Loop`` is a Python subclass of its C
loop, and uvloop's ``run_until_complete`` calls ``run_forever`` through it.
"""

from __future__ import annotations

from collections.abc import Callable
from time import monotonic
from types import ModuleType
from typing import Any

from .._metrics import TIMER, Series, declare_series
from .._record import append
from . import Integration
from ._failures import failed

LAG = "asyncio.event_loop.lag"
INTERVAL = 0.1  # seconds between samples

IDENTIFIER = "asyncio"


class Sampler:
    """The timer callback of one running loop: records its lateness and schedules the next."""

    __slots__ = ("due", "handle", "loop", "series")

    def __init__(self, loop: Any, series: Series) -> None:
        self.loop = loop
        self.series = series
        self.handle: Any = None
        self.due = 0.0

    def schedule(self, delay: float = INTERVAL) -> None:
        # Lateness is measured on the monotonic clock, not the loop's: uvloop's ``time()`` is
        # libuv's, in whole milliseconds and read once per loop iteration.
        self.due = monotonic() + delay
        self.handle = self.loop.call_later(delay, self.tick)

    def tick(self) -> None:
        late = monotonic() - self.due  # a loop may run a callback up to its clock's resolution early
        append(self.series, int(late * 1e9) if late > 0 else 0)
        self.schedule()

    def stop(self) -> None:
        if self.handle is not None:
            self.handle.cancel()
            self.handle = None


_series: Series | None = None


def _start(loop: Any) -> Sampler | None:
    global _series
    try:
        if _series is None:
            _series = declare_series(LAG, TIMER, {}, "s")
        sampler = Sampler(loop, _series)
        sampler.schedule(0.0)  # the first sample is due as the loop starts: behind what is ready already
        return sampler
    except Exception:
        failed(IDENTIFIER, "sample the event loop's lag", "this loop's lag is not recorded")
        return None


def _run_forever(original: Callable[..., Any]) -> Callable[..., Any]:
    def run_forever(self: Any, *args: Any, **kwargs: Any) -> Any:
        sampler = _start(self)
        try:
            return original(self, *args, **kwargs)
        finally:
            if sampler is not None:
                sampler.stop()

    return run_forever


class AsyncioLagIntegration(Integration):
    identifier = IDENTIFIER

    def setup(self, module: ModuleType) -> None:  # asyncio.base_events or uvloop
        self.patch(module.Loop if module.__name__ == "uvloop" else module.BaseEventLoop, "run_forever", _run_forever)
