"""`timer()`: a `Timer` times a ``with``/``async with`` block, or decorates like `timed`.

Apart from `_record` because it is also a decorator (`_decorate.wrap`), which builds on
`_record`'s hot wrappers.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from time import perf_counter_ns
from typing import TYPE_CHECKING, Any, Self, TypeVar

from . import _record, _speedups
from ._decorate import wrap
from ._metrics import TIMER, Series, resolve_call_site
from ._record import append, record_error

F = TypeVar("F", bound=Callable[..., Any])

# Call-site cache: (name, *tag items) -> series.
_timers: dict[Any, Series] = {}


class PureTimerCore:
    """`Timer`'s recording core in Python: the reference for `_fast.TimerCore`."""

    __slots__ = ("_series", "_starts")

    def __init__(self, series: Series) -> None:
        self._series = series
        self._starts: list[int] = []

    def __enter__(self) -> Self:
        self._starts.append(perf_counter_ns())
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: object) -> None:
        end = perf_counter_ns()
        starts = self._starts
        if not starts:
            return
        if not _record.ENABLED:
            starts.pop()
            return
        elapsed = end - starts.pop()
        if exc is None or isinstance(exc, GeneratorExit):
            append(self._series, elapsed)
        else:
            record_error(self._series, exc, elapsed)


if TYPE_CHECKING:
    _Core = PureTimerCore
else:
    _Core = PureTimerCore if _speedups.fast is None else _speedups.fast.TimerCore


class Timer(_Core):
    """Times a ``with``/``async with`` block, or decorates a function like `timed`.

    Created by `instrument.timer()`. One object may be entered again while active
    (nesting) or from several threads or tasks at once: starts are kept on a stack,
    so counts and sums stay exact; only which start pairs with which end is
    ambiguous when uses overlap on different threads or tasks. Create the timer in
    the ``with`` statement itself (``with instrument.timer("x"):``) to avoid that.
    ``__enter__``/``__exit__`` come from `PureTimerCore` or, on the C fast path,
    from `_fast.TimerCore` (the same behaviour).
    """

    __slots__ = ()

    @property
    def name(self) -> str:
        return self._series.metric.name

    @property
    def tags(self) -> Mapping[str, Any]:
        return dict(self._series.tags)

    def __repr__(self) -> str:
        return f"<instrument.timer {self.name!r} tags={self.tags!r}>"

    async def __aenter__(self) -> Timer:
        return self.__enter__()

    async def __aexit__(self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: object) -> None:
        self.__exit__(exc_type, exc, tb)

    def __call__(self, fn: F) -> F:
        if not _record.ENABLED:
            return fn
        wrapped: F = wrap(fn, self._series, timed=True)
        return wrapped


def timer(name: str, tags: Mapping[str, Any] | None = None) -> Timer:
    """A timer for *name*: ``with timer(...)``, ``async with timer(...)`` or ``@timer(...)``."""
    try:
        series = _timers[name if tags is None else (name, *tags.items())]
    except (KeyError, TypeError, AttributeError):
        series = resolve_call_site(_timers, TIMER, name, tags, None)
    return Timer(series)


# The Python function, whichever path is active (tests and the benchmark run both).
PURE_TIMER = timer

if _speedups.fast is not None:
    # The C timer() looks the call site up in the same cache and creates the same Timer.
    _speedups.fast.setup_timer(_timers, TIMER, Timer)
    timer = _speedups.fast.timer
