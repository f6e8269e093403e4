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
records that number. Asynchronous drivers whose ``cursor()`` is a plain call and whose
statements are awaited (psycopg 3's ``AsyncConnection``) get `AsyncConnectionProxy`
and `AsyncCursorProxy`, which time the awaited calls.

Everything else passes through to the real object: attributes, ``fetch*``,
``description``, ``rowcount``, iteration, ``with`` / ``async with`` blocks (which hand
back the proxy), custom cursor and row factories. A proxy has exactly the methods of
the object it wraps: ``hasattr(conn, "execute")`` is false when the driver's
connection has no ``execute``, because drivers branch on such checks. Functions of a
driver that type-check their argument in C cannot accept a proxy; the driver
integrations patch those with `unwrapping`. Never recorded: SQL text beyond its
keyword, parameters, literals, credentials.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from time import perf_counter_ns
from types import ModuleType
from typing import Any

import wrapt

from .._metrics import HISTOGRAM, TIMER, error_name
from .._suppress import suppressed
from ._sql import operation
from ._tagged import Tagged

__all__ = [
    "AsyncConnectionProxy",
    "AsyncCursorProxy",
    "ConnectionProxy",
    "CursorProxy",
    "connect_wrapper",
    "instrument_connect",
    "uninstrument_connect",
    "unwrap",
    "unwrapping",
    "wrap_connection",
]

DURATION = "db.client.operation.duration"
RETURNED_ROWS = "db.client.response.returned_rows"
_KEYS = ("db.system.name", "db.namespace", "db.operation.name", "error.type")
# A row count past this is a driver's "unknown" sentinel (MySQL's 2**64 - 1), not rows.
_MAX_ROWS = 2**62

_duration = Tagged(DURATION, TIMER, "s", _KEYS)
_rows = Tagged(RETURNED_ROWS, HISTOGRAM, "{row}", _KEYS[:3])

Namespace = Callable[[tuple[Any, ...], dict[str, Any], Any], str | None]


class Database:
    """What every record of one connection shares.

    *commits_on_exit*: the driver's ``with conn:`` ends a transaction (commit, or
    rollback when the block raises), so leaving the block is timed as ``COMMIT`` or
    ``ROLLBACK``. False for drivers whose ``with`` only closes the connection.
    """

    __slots__ = ("commits_on_exit", "namespace", "system")

    def __init__(self, system: str, namespace: str | None, commits_on_exit: bool = False) -> None:
        self.system = system
        self.namespace = namespace
        self.commits_on_exit = commits_on_exit


def _timed(db: Database, op: str, call: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    """``call(*args, **kwargs)``, its duration recorded under *op* (and its error, if any)."""
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
    """`_timed` for a call that returns an awaitable: timed until it completes."""
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
    """Record the row count of a statement that returned rows, when the driver knows it.

    Called after a statement was timed, so only when instrumentation is not suppressed.
    """
    try:
        if cursor.description is None:
            return
        count = cursor.rowcount
    except Exception:
        return
    if type(count) is int and 0 <= count < _MAX_ROWS:
        _rows.record((db.system, db.namespace, op), count)


# --- the proxies ----------------------------------------------------------------------


class _Proxy(wrapt.ObjectProxy[Any]):
    """What every proxy shares: the database it records for; never copied or pickled."""

    def __init__(self, wrapped: Any, db: Database) -> None:
        super().__init__(wrapped)
        self._self_db = db

    def __iter__(self) -> Any:
        iterator = iter(self.__wrapped__)
        return self if iterator is self.__wrapped__ else iterator  # cursors are their own iterators

    def __copy__(self) -> Any:
        raise TypeError(f"instrumented {type(self.__wrapped__).__name__} objects cannot be copied")

    def __deepcopy__(self, memo: Any) -> Any:
        raise TypeError(f"instrumented {type(self.__wrapped__).__name__} objects cannot be copied")

    def __reduce_ex__(self, protocol: Any) -> Any:
        raise TypeError(f"instrumented {type(self.__wrapped__).__name__} objects cannot be pickled")


class CursorProxy(_Proxy):
    """A cursor whose statements are timed; everything else is the real cursor's."""

    def __init__(self, cursor: Any, db: Database, connection: Any = None) -> None:
        super().__init__(cursor, db)
        self._self_connection = connection

    def execute(self, statement: Any, *args: Any, **kwargs: Any) -> Any:
        # The hot path, written out rather than through `_timed`: one check of
        # `suppressed()` and no argument repacking.
        wrapped = self.__wrapped__
        if suppressed():
            result = wrapped.execute(statement, *args, **kwargs)
            return self if result is wrapped else result
        db = self._self_db
        op = operation(statement)
        start = perf_counter_ns()
        try:
            result = wrapped.execute(statement, *args, **kwargs)
        except BaseException as exc:
            _duration.record((db.system, db.namespace, op, error_name(type(exc))), perf_counter_ns() - start)
            raise
        _duration.record((db.system, db.namespace, op, None), perf_counter_ns() - start)
        _returned_rows(db, op, wrapped)
        return self if result is wrapped else result

    def executemany(self, statement: Any, *args: Any, **kwargs: Any) -> Any:
        wrapped = self.__wrapped__
        result = _timed(self._self_db, operation(statement), wrapped.executemany, statement, *args, **kwargs)
        return self if result is wrapped else result

    def callproc(self, procname: Any, *args: Any, **kwargs: Any) -> Any:
        return _timed(self._self_db, "CALL", self.__wrapped__.callproc, procname, *args, **kwargs)

    @property
    def connection(self) -> Any:
        """The instrumented connection that made this cursor (the real one otherwise)."""
        real = self.__wrapped__.connection
        proxy = self._self_connection
        return proxy if proxy is not None and unwrap(proxy) is real else real


class AsyncCursorProxy(CursorProxy):
    """An asynchronous cursor: awaited ``execute``/``executemany``/``callproc`` are timed."""

    async def execute(self, statement: Any, *args: Any, **kwargs: Any) -> Any:
        op = operation(statement)
        wrapped = self.__wrapped__
        result = await _timed_async(self._self_db, op, wrapped.execute, statement, *args, **kwargs)
        if not suppressed():
            _returned_rows(self._self_db, op, wrapped)
        return self if result is wrapped else result

    async def executemany(self, statement: Any, *args: Any, **kwargs: Any) -> Any:
        wrapped = self.__wrapped__
        result = await _timed_async(
            self._self_db, operation(statement), wrapped.executemany, statement, *args, **kwargs
        )
        return self if result is wrapped else result

    async def callproc(self, procname: Any, *args: Any, **kwargs: Any) -> Any:
        return await _timed_async(self._self_db, "CALL", self.__wrapped__.callproc, procname, *args, **kwargs)


class ConnectionProxy(_Proxy):
    """A connection whose cursors are instrumented and whose transactions are timed."""

    _self_cursor_proxy: type[CursorProxy] = CursorProxy

    def _self_cursor(self, cursor: Any) -> Any:
        if isinstance(cursor, CursorProxy):
            return cursor
        base = self._self_cursor_proxy
        return proxy_class(base, cursor)(cursor, self._self_db, self)

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
        if not suppressed():
            _returned_rows(self._self_db, op, cursor)
        return self._self_cursor(cursor)

    def executemany(self, statement: Any, *args: Any, **kwargs: Any) -> Any:
        op = operation(statement)
        return self._self_cursor(_timed(self._self_db, op, self.__wrapped__.executemany, statement, *args, **kwargs))

    def backup(self, target: Any, *args: Any, **kwargs: Any) -> Any:
        """sqlite3: the target must be the real connection (checked in C)."""
        return self.__wrapped__.backup(unwrap(target), *args, **kwargs)


class AsyncConnectionProxy(ConnectionProxy):
    """An asynchronous connection whose ``cursor()`` is a plain call (psycopg 3).

    Its cursors are `AsyncCursorProxy` objects; ``commit``, ``rollback`` and
    ``execute`` are awaited and timed.
    """

    _self_cursor_proxy = AsyncCursorProxy

    async def commit(self) -> Any:
        return await _timed_async(self._self_db, "COMMIT", self.__wrapped__.commit)

    async def rollback(self) -> Any:
        return await _timed_async(self._self_db, "ROLLBACK", self.__wrapped__.rollback)

    async def execute(self, statement: Any, *args: Any, **kwargs: Any) -> Any:
        op = operation(statement)
        cursor = await _timed_async(self._self_db, op, self.__wrapped__.execute, statement, *args, **kwargs)
        if not suppressed():
            _returned_rows(self._self_db, op, cursor)
        return self._self_cursor(cursor)

    async def executemany(self, statement: Any, *args: Any, **kwargs: Any) -> Any:
        op = operation(statement)
        cursor = await _timed_async(self._self_db, op, self.__wrapped__.executemany, statement, *args, **kwargs)
        return self._self_cursor(cursor)


_Proxies = (CursorProxy, ConnectionProxy)


def unwrap(obj: Any) -> Any:
    """The real connection or cursor behind one of our proxies (or *obj* itself)."""
    while isinstance(obj, _Proxies):
        obj = obj.__wrapped__
    return obj


def unwrapping(function: Callable[..., Any]) -> Callable[..., Any]:
    """*function* taking the real connection or cursor wherever it is given a proxy.

    For driver functions that check their argument's type in C (psycopg2's
    ``register_type(obj, scope)``, ``quote_ident(s, scope)``, ...), which a proxy can
    never pass however much it looks like a connection.
    """

    @functools.wraps(function)
    def call(*args: Any, **kwargs: Any) -> Any:
        return function(*map(unwrap, args), **{key: unwrap(value) for key, value in kwargs.items()})

    call.__instrument_original__ = function  # type: ignore[attr-defined]
    return call


# --- one proxy class per wrapped type ---------------------------------------------------
#
# A proxy must support exactly what the real object supports. Drivers branch on
# hasattr() (psycopg2's `_solve_conn_curs` takes anything with `execute` for a cursor),
# so each instrumented method the wrapped type lacks is hidden: reading it falls through
# to the real object, which raises its own AttributeError. Protocol methods follow the
# wrapped type too: `with cursor:` on a driver without it raises the same TypeError as
# on the real cursor (wrapt's proxies define __enter__ and __aenter__ for every object
# and would raise AttributeError).


class _Absent:
    """A method the wrapped type lacks: ``hasattr`` is false and reads reach the real object."""

    def __get__(self, instance: Any, owner: Any = None) -> Any:
        raise AttributeError


_INSTRUMENTED = {
    CursorProxy: ("execute", "executemany", "callproc", "connection"),
    ConnectionProxy: ("cursor", "commit", "rollback", "execute", "executemany", "backup"),
}


def _enter(self: Any) -> Any:
    result = self.__wrapped__.__enter__()
    return self if result is self.__wrapped__ else result


def _exit(self: Any, *exc_info: Any) -> Any:
    return self.__wrapped__.__exit__(*exc_info)


def _commit_on_exit(self: Any, *exc_info: Any) -> Any:
    """``with conn:`` ends a transaction: timed as the COMMIT or ROLLBACK it is."""
    wrapped = self.__wrapped__
    if not self._self_db.commits_on_exit or getattr(wrapped, "closed", False):
        return wrapped.__exit__(*exc_info)
    return _timed(self._self_db, "COMMIT" if exc_info[0] is None else "ROLLBACK", wrapped.__exit__, *exc_info)


async def _aenter(self: Any) -> Any:
    result = await self.__wrapped__.__aenter__()
    return self if result is self.__wrapped__ else result


async def _aexit(self: Any, *exc_info: Any) -> Any:
    return await self.__wrapped__.__aexit__(*exc_info)


async def _commit_on_aexit(self: Any, *exc_info: Any) -> Any:
    """``async with conn:`` ends a transaction: timed as the COMMIT or ROLLBACK it is."""
    wrapped = self.__wrapped__
    if not self._self_db.commits_on_exit or getattr(wrapped, "closed", False):
        return await wrapped.__aexit__(*exc_info)
    op = "COMMIT" if exc_info[0] is None else "ROLLBACK"
    return await _timed_async(self._self_db, op, wrapped.__aexit__, *exc_info)


def _next(self: Any) -> Any:
    return next(self.__wrapped__)


def _aiter(self: Any) -> Any:
    return self.__wrapped__.__aiter__()


def _anext(self: Any) -> Any:
    return self.__wrapped__.__anext__()


def _no_context(self: Any, *args: Any) -> Any:
    with self.__wrapped__:  # raises the interpreter's own TypeError for this type
        pass


async def _no_async_context(self: Any, *args: Any) -> Any:
    async with self.__wrapped__:  # raises the interpreter's own TypeError for this type
        pass


_PROTOCOL = {
    "__enter__": _enter,
    "__exit__": _exit,
    "__next__": _next,
    "__aenter__": _aenter,
    "__aexit__": _aexit,
    "__aiter__": _aiter,
    "__anext__": _anext,
}
_CONNECTION_PROTOCOL = {**_PROTOCOL, "__exit__": _commit_on_exit, "__aexit__": _commit_on_aexit}
_MISSING = {
    "__enter__": _no_context,
    "__exit__": _no_context,
    "__aenter__": _no_async_context,
    "__aexit__": _no_async_context,
}
_classes: dict[tuple[type, type], type] = {}


def proxy_class(base: type, wrapped: Any) -> type:
    """*base* fitted to the type of *wrapped* (cached per type).

    Instrumented methods the type lacks are hidden; protocol methods are those it has.
    An instrumented name counts as present when the type or the first instance seen
    has it (pymysql sets ``cursor.connection`` per instance).
    """
    kind = type(wrapped)
    key = (base, kind)
    found = _classes.get(key)
    if found is None:
        family = CursorProxy if issubclass(base, CursorProxy) else ConnectionProxy
        protocol = _PROTOCOL if family is CursorProxy else _CONNECTION_PROTOCOL
        methods: dict[str, Any] = {
            name: method if hasattr(kind, name) else _MISSING[name]
            for name, method in protocol.items()
            if hasattr(kind, name) or name in _MISSING
        }
        for name in _INSTRUMENTED[family]:
            if not (hasattr(kind, name) or hasattr(wrapped, name)):
                methods[name] = _Absent()
        found = type(base.__name__, (base,), {"__module__": base.__module__, "__slots__": (), **methods})
        _classes[key] = found
    return found


def wrap_connection(
    connection: Any,
    db_system: str,
    namespace: str | None,
    *,
    asynchronous: bool = False,
    commits_on_exit: bool = False,
) -> Any:
    """*connection* behind a `ConnectionProxy` (or `AsyncConnectionProxy`), once."""
    if isinstance(connection, ConnectionProxy):
        return connection
    base = AsyncConnectionProxy if asynchronous else ConnectionProxy
    return proxy_class(base, connection)(connection, Database(db_system, namespace, commits_on_exit))


def _name(namespace: Namespace | None, args: tuple[Any, ...], kwargs: dict[str, Any], connection: Any) -> str | None:
    if namespace is None:
        return None
    try:
        name = namespace(args, kwargs, connection)
    except Exception:  # a driver that does not know its database leaves the tag out
        return None
    return name or None


def connect_wrapper(
    original: Callable[..., Any],
    db_system: str,
    namespace: Namespace | None = None,
    *,
    commits_on_exit: bool = False,
) -> Callable[..., Any]:
    """A ``connect`` that returns instrumented connections.

    *namespace* computes ``db.namespace`` from the connect arguments and the new
    connection, without a query; *commits_on_exit*: see `Database`.
    """

    def connect(*args: Any, **kwargs: Any) -> Any:
        connection = original(*args, **kwargs)
        name = _name(namespace, args, kwargs, connection)
        return wrap_connection(connection, db_system, name, commits_on_exit=commits_on_exit)

    connect.__instrument_original__ = original  # type: ignore[attr-defined]
    return connect


def async_connect_wrapper(
    original: Callable[..., Any],
    db_system: str,
    namespace: Namespace | None = None,
    *,
    commits_on_exit: bool = False,
) -> Callable[..., Any]:
    """An awaitable ``connect`` (psycopg 3's ``AsyncConnection.connect``) returning
    instrumented asynchronous connections."""

    async def connect(*args: Any, **kwargs: Any) -> Any:
        connection = await original(*args, **kwargs)
        name = _name(namespace, args, kwargs, connection)
        return wrap_connection(connection, db_system, name, asynchronous=True, commits_on_exit=commits_on_exit)

    connect.__instrument_original__ = original  # type: ignore[attr-defined]
    return connect


def instrument_connect(
    module: ModuleType | Any,
    name: str = "connect",
    *,
    db_system: str,
    namespace: Namespace | None = None,
    commits_on_exit: bool = False,
) -> None:
    """Make ``module.<name>(...)`` return instrumented connections (idempotent).

    *db_system* is the ``db.system.name`` tag (``postgresql``, ``mysql``, ``sqlite``,
    ...); *namespace*, if given, computes ``db.namespace`` from the connect arguments
    and the new connection; *commits_on_exit* says that the driver's ``with conn:``
    commits (or rolls back), so that it is timed as such. Undo with
    `uninstrument_connect`.
    """
    if not isinstance(db_system, str) or not db_system:
        raise ValueError(f"db_system must be a non-empty str such as 'postgresql', got {db_system!r}")
    current = getattr(module, name)
    if not callable(current):
        raise TypeError(f"{getattr(module, '__name__', module)!r}.{name} is not callable")
    if hasattr(current, "__instrument_original__"):
        return
    wrapper = connect_wrapper(current, db_system, namespace, commits_on_exit=commits_on_exit)
    try:
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
