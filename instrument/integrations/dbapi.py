"""DB-API 2.0 instrumentation for any driver: connections and cursors as transparent proxies.

>>> import instrument.integrations.dbapi as dbapi
>>> import mydriver
>>> dbapi.instrument_connect(mydriver, "connect", db_system="mydb")

From then on ``mydriver.connect(...)`` returns a `ConnectionProxy` whose cursors are
`CursorProxy` objects (wrapt ``ObjectProxy``): ``execute``, ``executemany``,
``callproc``, ``commit`` and ``rollback`` are timed into
``db.client.operation.duration`` (seconds) tagged ``db.system.name``,
``db.operation.name`` (the statement's keyword, see `_sql`), ``db.namespace`` when
the driver names the database without a query, and ``error.type`` when the call
raises (the driver's exception propagates unchanged). When a statement returns rows
and the driver knows how many (``rowcount``), ``db.client.response.returned_rows``
records that number.

Everything else passes through to the real object: attributes, ``fetch*``,
``description``, ``rowcount``, iteration, ``with`` blocks (which hand back the proxy),
custom cursor and row factories. Functions of a driver that type-check their argument
in C cannot accept a proxy; the driver integrations patch those to `unwrap` it.
Never recorded: SQL text beyond its keyword, parameters, literals, credentials.
"""

from __future__ import annotations

from collections.abc import Callable
from time import perf_counter_ns
from types import ModuleType
from typing import Any

import wrapt

from .._metrics import HISTOGRAM, TIMER, error_name
from .._suppress import suppressed
from ._sql import operation
from ._tagged import Tagged

__all__ = ["ConnectionProxy", "CursorProxy", "instrument_connect", "uninstrument_connect", "unwrap"]

DURATION = "db.client.operation.duration"
RETURNED_ROWS = "db.client.response.returned_rows"
_KEYS = ("db.system.name", "db.namespace", "db.operation.name", "error.type")

_duration = Tagged(DURATION, TIMER, "s", _KEYS)
_rows = Tagged(RETURNED_ROWS, HISTOGRAM, "{row}", _KEYS[:3])


class Database:
    """What every record of one connection shares."""

    __slots__ = ("namespace", "system")

    def __init__(self, system: str, namespace: str | None) -> None:
        self.system = system
        self.namespace = namespace


def unwrap(obj: Any) -> Any:
    """The real connection or cursor behind one of our proxies (or *obj* itself)."""
    while isinstance(obj, (ConnectionProxy, CursorProxy)):
        obj = obj.__wrapped__
    return obj


def _timed(db: Database, op: str, call: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    if suppressed():
        return call(*args, **kwargs)
    start = perf_counter_ns()
    try:
        result = call(*args, **kwargs)
    except BaseException as exc:
        _duration.record((db.system, db.namespace, op, error_name(type(exc))), perf_counter_ns() - start)
        raise
    _duration.record((db.system, db.namespace, op, None), perf_counter_ns() - start)
    return result


async def _timed_async(db: Database, op: str, call: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    if suppressed():
        return await call(*args, **kwargs)
    start = perf_counter_ns()
    try:
        result = await call(*args, **kwargs)
    except BaseException as exc:
        _duration.record((db.system, db.namespace, op, error_name(type(exc))), perf_counter_ns() - start)
        raise
    _duration.record((db.system, db.namespace, op, None), perf_counter_ns() - start)
    return result


def _returned_rows(db: Database, op: str, cursor: Any) -> None:
    try:
        if cursor.description is None:
            return
        count = cursor.rowcount
    except Exception:
        return
    if isinstance(count, int) and count >= 0:
        _rows.record((db.system, db.namespace, op), count)


class CursorProxy(wrapt.ObjectProxy[Any]):
    """A cursor whose statements are timed; everything else is the real cursor's."""

    def __init__(self, cursor: Any, db: Database, connection: Any = None) -> None:
        super().__init__(cursor)
        self._self_db = db
        self._self_connection = connection

    def _self_result(self, result: Any) -> Any:
        return self if result is self.__wrapped__ else result

    def execute(self, statement: Any, *args: Any, **kwargs: Any) -> Any:
        op = operation(statement)
        result = _timed(self._self_db, op, self.__wrapped__.execute, statement, *args, **kwargs)
        _returned_rows(self._self_db, op, self.__wrapped__)
        return self._self_result(result)

    def executemany(self, statement: Any, *args: Any, **kwargs: Any) -> Any:
        result = _timed(self._self_db, operation(statement), self.__wrapped__.executemany, statement, *args, **kwargs)
        return self._self_result(result)

    def callproc(self, procname: Any, *args: Any, **kwargs: Any) -> Any:
        return _timed(self._self_db, "CALL", self.__wrapped__.callproc, procname, *args, **kwargs)

    @property
    def connection(self) -> Any:
        real = self.__wrapped__.connection
        proxy = self._self_connection
        return proxy if proxy is not None and unwrap(proxy) is real else real

    def __iter__(self) -> Any:
        return iter(self.__wrapped__)

    def __copy__(self) -> Any:
        raise TypeError("instrumented cursors cannot be copied")

    def __reduce_ex__(self, protocol: Any) -> Any:
        raise TypeError("instrumented cursors cannot be pickled")


class ConnectionProxy(wrapt.ObjectProxy[Any]):
    """A connection whose cursors are instrumented and whose transactions are timed."""

    def __init__(self, connection: Any, db: Database) -> None:
        super().__init__(connection)
        self._self_db = db

    def _self_cursor(self, cursor: Any) -> Any:
        if isinstance(cursor, CursorProxy):
            return cursor
        return _cursor(cursor, self._self_db, self)

    def cursor(self, *args: Any, **kwargs: Any) -> Any:
        return self._self_cursor(self.__wrapped__.cursor(*args, **kwargs))

    def commit(self) -> Any:
        return _timed(self._self_db, "COMMIT", self.__wrapped__.commit)

    def rollback(self) -> Any:
        return _timed(self._self_db, "ROLLBACK", self.__wrapped__.rollback)

    # sqlite3 and psycopg shortcuts that create a cursor and run a statement on it.
    def execute(self, statement: Any, *args: Any, **kwargs: Any) -> Any:
        op = operation(statement)
        cursor = _timed(self._self_db, op, self.__wrapped__.execute, statement, *args, **kwargs)
        return self._self_cursor(cursor)

    def executemany(self, statement: Any, *args: Any, **kwargs: Any) -> Any:
        op = operation(statement)
        return self._self_cursor(_timed(self._self_db, op, self.__wrapped__.executemany, statement, *args, **kwargs))

    def backup(self, target: Any, *args: Any, **kwargs: Any) -> Any:
        """sqlite3: the target must be the real connection (checked in C)."""
        return self.__wrapped__.backup(unwrap(target), *args, **kwargs)

    def __copy__(self) -> Any:
        raise TypeError("instrumented connections cannot be copied")

    def __reduce_ex__(self, protocol: Any) -> Any:
        raise TypeError("instrumented connections cannot be pickled")


# Protocol methods follow the wrapped type, so that a proxy never accepts (or rejects
# differently) an operation the real object does not support: `with cursor:` on a
# driver without it raises the same TypeError as on the real cursor (wrapt's proxies
# would raise AttributeError, as they define __enter__ for every object).


def _enter(self: Any) -> Any:
    result = self.__wrapped__.__enter__()
    return self if result is self.__wrapped__ else result


def _exit(self: Any, *exc_info: Any) -> Any:
    return self.__wrapped__.__exit__(*exc_info)


def _next(self: Any) -> Any:
    return next(self.__wrapped__)


def _no_context(self: Any, *args: Any) -> Any:
    with self.__wrapped__:  # raises the interpreter's own TypeError for this type
        pass


_PROTOCOL = {"__enter__": _enter, "__exit__": _exit, "__next__": _next}
_MISSING = {"__enter__": _no_context, "__exit__": _no_context}
_classes: dict[tuple[type, type], type] = {}


def proxy_class(base: type, wrapped: type) -> type:
    """*base* plus the protocol methods *wrapped* supports (cached per type)."""
    key = (base, wrapped)
    found = _classes.get(key)
    if found is None:
        methods = {
            name: method if hasattr(wrapped, name) else _MISSING[name]
            for name, method in _PROTOCOL.items()
            if hasattr(wrapped, name) or name in _MISSING
        }
        found = type(base.__name__, (base,), {"__module__": base.__module__, "__slots__": (), **methods})
        _classes[key] = found
    return found


def _cursor(cursor: Any, db: Database, connection: Any) -> Any:
    return proxy_class(CursorProxy, type(cursor))(cursor, db, connection)


def wrap_connection(connection: Any, db_system: str, namespace: str | None) -> Any:
    """*connection* behind a `ConnectionProxy` (once)."""
    if isinstance(connection, ConnectionProxy):
        return connection
    return proxy_class(ConnectionProxy, type(connection))(connection, Database(db_system, namespace))


def connect_wrapper(
    original: Callable[..., Any],
    db_system: str,
    namespace: Callable[[tuple[Any, ...], dict[str, Any], Any], str | None] | None = None,
) -> Callable[..., Any]:
    """A ``connect`` that returns instrumented connections."""

    def connect(*args: Any, **kwargs: Any) -> Any:
        connection = original(*args, **kwargs)
        try:
            name = namespace(args, kwargs, connection) if namespace is not None else None
        except Exception:
            name = None
        return wrap_connection(connection, db_system, name)

    connect.__instrument_original__ = original  # type: ignore[attr-defined]
    return connect


def instrument_connect(
    module: ModuleType | Any,
    name: str = "connect",
    *,
    db_system: str,
    namespace: Callable[[tuple[Any, ...], dict[str, Any], Any], str | None] | None = None,
) -> None:
    """Make ``module.<name>(...)`` return instrumented connections (idempotent).

    *db_system* is the ``db.system.name`` tag (``postgresql``, ``mysql``, ``sqlite``,
    ...); *namespace*, if given, computes ``db.namespace`` from the connect arguments
    and the new connection. Undo with `uninstrument_connect`.
    """
    if not isinstance(db_system, str) or not db_system:
        raise ValueError(f"db_system must be a non-empty str such as 'postgresql', got {db_system!r}")
    current = getattr(module, name)
    if not callable(current):
        raise TypeError(f"{getattr(module, '__name__', module)!r}.{name} is not callable")
    if hasattr(current, "__instrument_original__"):
        return
    wrapper = connect_wrapper(current, db_system, namespace)
    try:
        import functools

        functools.update_wrapper(wrapper, current)
    except (AttributeError, TypeError):
        pass
    setattr(module, name, wrapper)


def uninstrument_connect(module: ModuleType | Any, name: str = "connect") -> None:
    """Put back the ``connect`` that `instrument_connect` replaced."""
    current = getattr(module, name)
    original = getattr(current, "__instrument_original__", None)
    if original is not None:
        setattr(module, name, original)
