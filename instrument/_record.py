"""The hot path: every function here runs inside the user's instrumented call.

Rules for this module: no locks, no system calls, no string formatting, no
validation after declaration. A record is one ``len()`` check and one
``list.append`` on a list only the calling thread appends to (see `_buffers`).
Nothing here may raise into the user's code except `count()`/`record()`/`gauge()`
rejecting bad arguments, which is their declaration-time check.

The append sequence is written out in each hot wrapper rather than called as a
helper: a Python call costs about as much as the whole sequence.

This module is also the reference for the C fast path (`instrument/_fast.c`, chosen by
`_speedups`): when it is active, `count`, `record`, `gauge` and `append` here are the C
functions and `_decorate` wraps plain functions with `_fast.FunctionWrapper`; the C code
calls back into `register`, `overflow`, `record_error` and `resolve_call_site` below, so
both paths share every rule past the append. `PURE` keeps the Python functions (tests
and the benchmark run both paths in one process).
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Mapping
from time import perf_counter_ns
from typing import Any, TypeVar

from . import _log, _speedups
from ._buffers import overflow, register, slow_threshold
from ._metrics import COUNTER, GAUGE, HISTOGRAM, UNSET, Series, resolve_call_site

F = TypeVar("F", bound=Callable[..., Any])

# The hot path reads these as plain module globals (the cheapest read there is). They
# mirror the runtime's state and only `set_state()`, called by `_runtime.Runtime`, writes them.
SLOW_AT = slow_threshold(262_144, 1_048_576)  # list length at which `overflow` takes over
ENABLED = True  # the kill switch for count()/record()/gauge(); decorators check it once


def _nothing() -> None:
    """No runtime yet: nothing to start."""


# Called with the first value of each gauge series, so that a process that only sets
# gauges starts exporting them (buffers have `_buffers.on_first_record` for the rest).
start_collector: Callable[[], None] = _nothing


def set_state(*, enabled: bool, slow_at: int, on_start: Callable[[], None]) -> None:
    """Set what the hot path reads (called by the runtime only)."""
    global ENABLED, SLOW_AT, start_collector
    ENABLED = enabled
    SLOW_AT = slow_at
    start_collector = on_start
    if _fast is not None:
        _fast.set_state(enabled, slow_at)


def lists_unhooked() -> None:
    """After `_buffers.reset_after_fork` (a forked child): the C path's per-thread memos of
    call sites (free-threaded builds) must not keep the lists it unhooked."""
    if _fast is not None:
        _fast.forget_memo()


_fast = _speedups.fast
_MAX = sys.float_info.max  # larger ints cannot be aggregated as floats
# Call-site caches: (name, *tag items) -> series, for count()/record()/gauge().
_counters: dict[Any, Series] = {}
_histograms: dict[Any, Series] = {}
_gauges: dict[Any, Series] = {}


def append(series: Series, value: object) -> None:
    """Record *value* into *series* from the calling thread (the non-inlined form)."""
    try:
        buf = series.tls.buf
    except AttributeError:
        buf = register(series)
    if len(buf) < SLOW_AT:
        buf.append(value)
    else:
        overflow(buf, value)


def record_error(series: Series, exc: BaseException, value: object) -> None:
    """Record *value* into the ``error=<class>`` sibling of *series*. Never raises."""
    try:
        append(series.metric.error_series(series.tags, type(exc)), value)
    except Exception:  # instrumentation must not replace the user's exception
        _log.error_once(
            ("record_error", series.metric.name),
            "instrument: could not record an error for metric %r",
            series.metric.name,
            exc_info=True,
        )


# --- decorated functions ---------------------------------------------------------


def timed_function(fn: Callable[..., Any], series: Series) -> Callable[..., Any]:
    tls = series.tls

    def wrapper(*args: Any, **kwargs: Any) -> Any:
        t = perf_counter_ns()
        try:
            result = fn(*args, **kwargs)
        except BaseException as exc:
            record_error(series, exc, perf_counter_ns() - t)
            raise
        t = perf_counter_ns() - t
        try:
            buf = tls.buf
        except AttributeError:
            buf = register(series)
        if len(buf) < SLOW_AT:
            buf.append(t)
        else:
            overflow(buf, t)
        return result

    return wrapper


def timed_coroutine(fn: Callable[..., Any], series: Series) -> Callable[..., Any]:
    tls = series.tls

    async def wrapper(*args: Any, **kwargs: Any) -> Any:
        t = perf_counter_ns()
        try:
            result = await fn(*args, **kwargs)
        except BaseException as exc:
            record_error(series, exc, perf_counter_ns() - t)
            raise
        t = perf_counter_ns() - t
        try:
            buf = tls.buf
        except AttributeError:
            buf = register(series)
        if len(buf) < SLOW_AT:
            buf.append(t)
        else:
            overflow(buf, t)
        return result

    return wrapper


def counted_function(fn: Callable[..., Any], series: Series) -> Callable[..., Any]:
    tls = series.tls

    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            result = fn(*args, **kwargs)
        except BaseException as exc:
            record_error(series, exc, 1)
            raise
        try:
            buf = tls.buf
        except AttributeError:
            buf = register(series)
        if len(buf) < SLOW_AT:
            buf.append(1)
        else:
            overflow(buf, 1)
        return result

    return wrapper


def counted_coroutine(fn: Callable[..., Any], series: Series) -> Callable[..., Any]:
    tls = series.tls

    async def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            result = await fn(*args, **kwargs)
        except BaseException as exc:
            record_error(series, exc, 1)
            raise
        try:
            buf = tls.buf
        except AttributeError:
            buf = register(series)
        if len(buf) < SLOW_AT:
            buf.append(1)
        else:
            overflow(buf, 1)
        return result

    return wrapper


def generator(fn: Callable[..., Any], series: Series, timed: bool) -> Callable[..., Any]:
    """Measure a generator from its first step to exhaustion or close.

    Closing early (``GeneratorExit``) is a normal end, not an error.
    """

    def wrapper(*args: Any, **kwargs: Any) -> Any:
        t = perf_counter_ns()
        try:
            result = yield from fn(*args, **kwargs)
        except GeneratorExit:
            append(series, perf_counter_ns() - t if timed else 1)
            raise
        except BaseException as exc:
            record_error(series, exc, perf_counter_ns() - t if timed else 1)
            raise
        append(series, perf_counter_ns() - t if timed else 1)
        return result

    return wrapper


def async_generator(fn: Callable[..., Any], series: Series, timed: bool) -> Callable[..., Any]:
    """Measure an async generator from its first step to exhaustion or ``aclose()``.

    ``yield from`` does not exist for async generators, so ``asend``/``athrow``/
    ``aclose`` are forwarded by hand.
    """

    async def wrapper(*args: Any, **kwargs: Any) -> Any:
        t = perf_counter_ns()
        inner = fn(*args, **kwargs)
        try:
            value = await inner.asend(None)
            while True:
                try:
                    sent = yield value
                except GeneratorExit:
                    await inner.aclose()
                    raise
                except BaseException as thrown:
                    value = await inner.athrow(thrown)
                else:
                    value = await inner.asend(sent)
        except StopAsyncIteration:
            append(series, perf_counter_ns() - t if timed else 1)
        except GeneratorExit:
            append(series, perf_counter_ns() - t if timed else 1)
            raise
        except BaseException as exc:
            record_error(series, exc, perf_counter_ns() - t if timed else 1)
            raise

    return wrapper


# --- count(), record(), gauge() ---------------------------------------------------


def count(name: str, value: int | float = 1, tags: Mapping[str, Any] | None = None, *, unit: str | None = None) -> None:
    """Add *value* (default 1, never negative) to the counter *name*."""
    if not ENABLED:
        return
    try:
        key = name if tags is None else (name, *tags.items())
        series = _counters[key if unit is None else (key, unit)]
    except (KeyError, TypeError, AttributeError):
        series = resolve_call_site(_counters, COUNTER, name, tags, unit)
    if value.__class__ is not int or not 0 <= value <= _MAX:
        value = _count_value(name, value)
    try:
        buf = series.tls.buf
    except AttributeError:
        buf = register(series)
    if len(buf) < SLOW_AT:
        buf.append(value)
    else:
        overflow(buf, value)


def record(name: str, value: int | float, tags: Mapping[str, Any] | None = None, *, unit: str | None = None) -> None:
    """Add *value* to the distribution *name* (a histogram: count, sum, quantiles)."""
    if not ENABLED:
        return
    try:
        key = name if tags is None else (name, *tags.items())
        series = _histograms[key if unit is None else (key, unit)]
    except (KeyError, TypeError, AttributeError):
        series = resolve_call_site(_histograms, HISTOGRAM, name, tags, unit)
    if (value.__class__ is not int and value.__class__ is not float) or not -_MAX <= value <= _MAX:
        value = _finite_value("record", name, value)
    try:
        buf = series.tls.buf
    except AttributeError:
        buf = register(series)
    if len(buf) < SLOW_AT:
        buf.append(value)
    else:
        overflow(buf, value)


def gauge(name: str, value: int | float, tags: Mapping[str, Any] | None = None, *, unit: str | None = None) -> None:
    """Set the gauge *name* to *value*; the last value set is exported each interval."""
    if not ENABLED:
        return
    try:
        key = name if tags is None else (name, *tags.items())
        series = _gauges[key if unit is None else (key, unit)]
    except (KeyError, TypeError, AttributeError):
        series = resolve_call_site(_gauges, GAUGE, name, tags, unit)
    if (value.__class__ is not int and value.__class__ is not float) or not -_MAX <= value <= _MAX:
        value = _finite_value("gauge", name, value)
    if series.value is UNSET:  # this series' first value: the pipeline may have to start
        start_collector()
    # Value first, flag second: the collector clears the flag before it reads the
    # value, so a value is never lost, at worst reported in two batches.
    series.value = value
    series.changed = True


def _count_value(name: str, value: object) -> int | float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"count({name!r}) needs an int or float increment, got {value!r}")
    if not 0 <= value <= _MAX:
        raise ValueError(
            f"count({name!r}) increments must be finite and >= 0 (a counter only goes "
            f"up), got {value!r}; use gauge() for a value that goes down"
        )
    return int(value) if isinstance(value, int) else float(value)


def _finite_value(function: str, name: str, value: object) -> int | float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"{function}({name!r}) needs an int or float value, got {value!r}")
    if not -_MAX <= value <= _MAX:
        huge = isinstance(value, int) and value.bit_length() >= 100
        shown = "an integer beyond float range" if huge else repr(value)
        raise ValueError(f"{function}({name!r}) needs a finite value, got {shown}")
    return int(value) if isinstance(value, int) else float(value)


# The Python functions, whichever path is active (the reference: tests and the benchmark).
PURE: dict[str, Callable[..., Any]] = {
    "count": count,
    "record": record,
    "gauge": gauge,
    "append": append,
    "timed_function": timed_function,
    "counted_function": counted_function,
}

if _fast is not None:
    # The C fast path takes the same collaborators (see its header comment) and replaces
    # the functions the package calls; set_state() keeps its copy of ENABLED and SLOW_AT.
    _fast.setup(globals())
    _fast.set_state(ENABLED, SLOW_AT)
    count = _fast.count
    record = _fast.record
    gauge = _fast.gauge
    append = _fast.append
