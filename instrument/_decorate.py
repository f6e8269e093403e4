"""`@timed` and `@counted`: declaration-time work, then a hot wrapper from `_record`.

The wrapper is chosen by what the function is (plain, coroutine, generator, async
generator), so `inspect.iscoroutinefunction` and friends keep answering as before,
and coroutines and generators are measured to completion, not to creation.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping
from typing import Any, TypeVar, overload

from . import _record, _speedups
from ._metrics import COUNTER, TIMER, Series, declare_series
from ._names import default_name

F = TypeVar("F", bound=Callable[..., Any])

# Code flags (see the `inspect` module); read directly so importing instrument does
# not import `inspect`.
_CO_GENERATOR = 0x20
_CO_COROUTINE = 0x80
_CO_ITERABLE_COROUTINE = 0x100
_CO_ASYNC_GENERATOR = 0x200


def _code_flags(fn: Callable[..., Any]) -> int:
    target: Any = fn
    while isinstance(target, functools.partial):
        target = target.func
    target = getattr(target, "__func__", target)  # bound methods
    code = getattr(target, "__code__", None)
    flags = getattr(code, "co_flags", 0)
    # inspect.markcoroutinefunction (3.12+) marks sync functions that return awaitables.
    if getattr(target, "_is_coroutine_marker", None) is not None:
        flags |= _CO_COROUTINE
    return int(flags)


def wrap(fn: Any, series: Series, *, timed: bool) -> Any:
    """Return *fn* wrapped so each call records into *series* (a duration or a count)."""
    if isinstance(fn, (classmethod, staticmethod)):
        return type(fn)(wrap(fn.__func__, series, timed=timed))
    if not callable(fn):
        raise TypeError(f"cannot instrument {fn!r}: it is not callable")
    flags = _code_flags(fn)
    if flags & _CO_ASYNC_GENERATOR:
        wrapper = _record.async_generator(fn, series, timed)
    elif flags & _CO_ITERABLE_COROUTINE and flags & _CO_GENERATOR:
        # A @types.coroutine generator: awaitable, so the wrapper must be too.
        import types

        wrapper = types.coroutine(_record.generator(fn, series, timed))
    elif flags & _CO_GENERATOR:
        wrapper = _record.generator(fn, series, timed)
    elif flags & (_CO_COROUTINE | _CO_ITERABLE_COROUTINE):
        if timed:
            wrapper = _record.timed_coroutine(fn, series)
        else:
            wrapper = _record.counted_coroutine(fn, series)
    elif _speedups.fast is not None:
        wrapper = _speedups.fast.FunctionWrapper(fn, series, timed)
    elif timed:
        wrapper = _record.timed_function(fn, series)
    else:
        wrapper = _record.counted_function(fn, series)
    try:
        functools.update_wrapper(wrapper, fn)
    except (AttributeError, TypeError):  # e.g. a callable object without __name__
        wrapper.__wrapped__ = fn  # type: ignore[attr-defined]
    if getattr(fn, "_is_coroutine_marker", None) is not None:
        wrapper._is_coroutine_marker = fn._is_coroutine_marker  # type: ignore[attr-defined]
    return wrapper


def _name_of(fn: Callable[..., Any]) -> str:
    target: Any = fn.__func__ if isinstance(fn, (classmethod, staticmethod)) else fn
    qualname = getattr(target, "__qualname__", None) or getattr(target, "__name__", None)
    if not isinstance(qualname, str):
        raise TypeError(
            f"cannot derive a metric name from {fn!r}; pass one, e.g. @timed('my.metric')"
        )
    return default_name(getattr(target, "__module__", None), qualname)


def _decorator(
    kind: str,
    function: str,
    name_or_fn: Any,
    tags: Mapping[str, Any] | None,
    unit: str | None,
) -> Any:
    timed = kind == TIMER

    def declare(fn: Any, name: Any) -> Any:
        if not callable(fn) and not isinstance(fn, (classmethod, staticmethod)):
            raise TypeError(f"@{function} decorates functions, got {fn!r}")
        series = declare_series(name if name is not None else _name_of(fn), kind, tags, unit)
        if not _record.ENABLED:
            return fn
        return wrap(fn, series, timed=timed)

    if callable(name_or_fn) or isinstance(name_or_fn, (classmethod, staticmethod)):
        return declare(name_or_fn, None)  # bare @timed
    if name_or_fn is not None and not isinstance(name_or_fn, str):
        raise TypeError(
            f"@{function}() takes a metric name (str) or decorates a function, got {name_or_fn!r}"
        )
    # Validate now, at decoration-expression time, even before a function is given.
    if name_or_fn is not None:
        declare_series(name_or_fn, kind, tags, unit)
    return lambda fn: declare(fn, name_or_fn)


@overload
def timed(name: F, /) -> F: ...
@overload
def timed(name: str | None = None, /, *, tags: Mapping[str, Any] | None = None) -> Callable[[F], F]: ...


def timed(name: Any = None, /, *, tags: Mapping[str, Any] | None = None) -> Any:
    """Record each call's wall time as a histogram (seconds), errors tagged ``error=<class>``.

    ``@timed`` names the metric ``<module>.<qualname>``; ``@timed("name", tags={...})``
    names it explicitly. Works on functions, methods, classmethods, staticmethods,
    coroutines (timed to completion) and (async) generators (timed to exhaustion or
    close). The name and tags are checked here, at decoration time.
    """
    return _decorator(TIMER, "timed", name, tags, "s")


@overload
def counted(name: F, /) -> F: ...
@overload
def counted(
    name: str | None = None, /, *, tags: Mapping[str, Any] | None = None, unit: str | None = None
) -> Callable[[F], F]: ...


def counted(
    name: Any = None, /, *, tags: Mapping[str, Any] | None = None, unit: str | None = None
) -> Any:
    """Count each completed call (+1), calls that raise tagged ``error=<class>``."""
    return _decorator(COUNTER, "counted", name, tags, unit)
