"""`timer()`: a `Timer` times a ``with``/``async with`` block, or decorates like `timed`.

Apart from `_record` because it is also a decorator (`_decorate.wrap`), which builds on
`_record`'s hot wrappers.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from time import perf_counter_ns
from typing import Any, TypeVar

from . import _record
from ._decorate import wrap
from ._metrics import TIMER, Series, resolve_call_site
from ._record import append, record_error

F = TypeVar("F", bound=Callable[..., Any])

# Call-site cache: (name, *tag items) -> series.
_timers: dict[Any, Series] = {}


class Timer:
    """Times a ``with``/``async with`` block, or decorates a function like `timed`.

    Created by `instrument.timer()`. One object may be entered again while active
    (nesting) or from several threads or tasks at once: starts are kept on a stack,
    so counts and sums stay exact; only which start pairs with which end is
    ambiguous when uses overlap on different threads or tasks. Create the timer in
    the ``with`` statement itself (``with instrument.timer("x"):``) to avoid that.
    """

    __slots__ = ("_series", "_starts")

    def __init__(self, series: Series) -> None:
        self._series = series
        self._starts: list[int] = []

    @property
    def name(self) -> str:
        return self._series.metric.name

    @property
    def tags(self) -> Mapping[str, Any]:
        return dict(self._series.tags)

    def __repr__(self) -> str:
        return f"<instrument.timer {self.name!r} tags={self.tags!r}>"

    def __enter__(self) -> Timer:
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

    async def __aenter__(self) -> Timer:
        self._starts.append(perf_counter_ns())
        return self

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
