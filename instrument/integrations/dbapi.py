"""DB-API 2.0 instrumentation: the driver's own objects, timed through the hooks it offers.

A program under instrumentation must not be able to tell (see docs/databases.md), so
connections and cursors are never wrapped in proxies: C code of the drivers reads the
real type, and a proxy crashed psycopg2's typecasters. Instead, one of two hooks:

- **Subclasses** (`subclass`), for drivers written in C (sqlite3, psycopg2). Their
  ``connect`` and ``cursor`` take the class to build (sqlite3's ``factory``, psycopg2's
  ``connection_factory`` and ``cursor_factory``), so the integration passes a subclass
  of the class the program asked for, whose ``execute``, ``executemany``, ``callproc``,
  ``commit`` and ``rollback`` are timed. The subclass keeps the name, module and
  docstring of its base; C type checks, ``Error.cursor``, adapters and typecasters see a
  real instance of the driver's type.
- **Class-level patches** (`statement_method`, `fixed_method` and their async
  versions), for drivers written in Python (psycopg 3, PyMySQL): the methods of the
  driver's own classes are replaced by timed wrappers, so every object keeps its exact
  type, however it was made.

Both record ``db.client.operation.duration`` (seconds) tagged ``db.system.name``,
``db.namespace``, ``server.address``, ``server.port`` (each when the driver knows it
without a query), ``db.operation.name`` (the statement's keyword, see `_sql`) and
``error.type`` when the call raises (the driver's exception propagates unchanged);
and, when a statement returns rows and the driver knows how many (``rowcount``),
``db.client.response.returned_rows``. Never recorded: SQL text beyond its keyword,
parameters, literals, credentials.

`instrument_connect` instruments any other driver by hand.
"""

from __future__ import annotations

import functools
import warnings
import weakref
from collections.abc import Awaitable, Callable, Coroutine
from time import perf_counter_ns
from types import CoroutineType, ModuleType
from typing import Any

from .. import _log
from .._metrics import HISTOGRAM, TIMER, error_name
from .._suppress import suppressed, suppressing
from ._sql import operation
from ._tagged import Tagged

__all__ = [
    "DURATION",
    "KEYS",
    "RETURNED_ROWS",
    "Database",
    "Databases",
    "async_fixed_method",
    "async_statement_method",
    "fixed_method",
    "instrument_connect",
    "instrumented",
    "statement_method",
    "subclass",
    "uninstrument_connect",
    "unwrap",
    "unwrapping",
    "wrap_connection",
]

DURATION = "db.client.operation.duration"
RETURNED_ROWS = "db.client.response.returned_rows"
# The tags of every database operation, in this order (other data-store integrations share them).
KEYS = ("db.system.name", "db.namespace", "server.address", "server.port", "db.operation.name", "error.type")
# A row count past this is a driver's "unknown" sentinel (MySQL's 2**64 - 1), not rows.
_MAX_ROWS = 2**62

_DRIVERS = ("asyncpg", "psycopg", "psycopg2", "pymysql", "redis", "sqlite3")  # named when recording fails
_duration = Tagged(DURATION, TIMER, "s", KEYS, integration=_DRIVERS)
_rows = Tagged(RETURNED_ROWS, HISTOGRAM, "{row}", KEYS[:5], integration=_DRIVERS)

Namespace = Callable[[tuple[Any, ...], dict[str, Any], Any], str | None]


class Database:
    """What every record of one connection shares: its tags, in the order of `KEYS`."""

    __slots__ = ("tags",)

    def __init__(self, system: str, namespace: str | None = None, address: str | None = None,
                 port: int | None = None) -> None:
        self.tags = (system, namespace or None, address or None, port or None)


class Databases:
    """The `Database` of each connection, computed once by *describe* (which must not
    query the server) and forgotten when the connection is collected; for connections
    of the driver's own classes, which have nowhere of ours to keep it.

    Keyed by ``id()``: a weakly keyed dictionary would build a weak reference on every
    lookup, and this is the hot path. The entry is removed by a ``weakref.finalize``
    callback, which runs while the connection is being freed, so before its id can be
    reused. A connection that cannot be weakly referenced is described on every call.
    """

    def __init__(self, system: str, describe: Callable[[Any], Database] | None = None) -> None:
        self._system = system
        self._describe = describe
        self._found: dict[int, Database] = {}

    def get(self, connection: Any) -> Database | None:
        """*connection*'s Database; None for a missing connection (a closed PyMySQL cursor)."""
        found = self._found.get(id(connection))
        if found is not None:
            return found
        if connection is None:
            return None
        try:
            found = Database(self._system) if self._describe is None else self._describe(connection)
        except Exception:  # a driver that does not know where it is connected: leave those tags out
            found = Database(self._system)
        self.put(connection, found)
        return found

    def of_cursor(self, cursor: Any) -> Database | None:
        """The Database of *cursor*'s connection (its ``connection`` attribute)."""
        return self.get(getattr(cursor, "connection", None))

    def put(self, connection: Any, database: Database) -> None:
        key = id(connection)
        try:
            finalizer = weakref.finalize(connection, self._found.pop, key, None)
        except TypeError:
            return
        finalizer.atexit = False  # nothing to forget at exit
        self._found[key] = database


# --- timing --------------------------------------------------------------------------


def _record(db: Database, op: str, error: BaseException | None, start: int) -> None:
    elapsed = perf_counter_ns() - start
    _duration.record((*db.tags, op, None if error is None else error_name(type(error))), elapsed)


def returned_rows(db: Database, op: str, cursor: Any) -> None:
    """Record the row count of a statement that returned rows, when the driver knows it."""
    try:
        if cursor.description is None:
            return
        count = cursor.rowcount
    except Exception:
        return
    if type(count) is int and 0 <= count < _MAX_ROWS:
        _rows.record((*db.tags, op), count)


def timed(db: Database, op: str, call: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Any:
    """``call(*args, **kwargs)``, its duration recorded under *op* (and its error, if any)."""
    start = perf_counter_ns()
    try:
        result = call(*args, **kwargs)
    except BaseException as exc:
        _record(db, op, exc, start)
        raise
    _record(db, op, None, start)
    return result


async def timed_async(db: Database, op: str, call: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Any:
    """`timed` for a call that returns an awaitable: timed until it completes."""
    start = perf_counter_ns()
    try:
        result = await call(*args, **kwargs)
    except BaseException as exc:
        _record(db, op, exc, start)
        raise
    _record(db, op, None, start)
    return result


def timed_awaitable(db: Database, op: str, then: Callable[[Database, str, Any], None] | None,
                    call: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Coroutine[Any, Any, Any]:
    """`timed_async` for a plain function that returns an awaitable (asyncpg's guarded methods
    check their connection when called): *call* runs now, so that what it raises is raised now,
    as without instrumentation; the coroutine returned awaits its awaitable, timed from now
    until it completes, then gives ``then(db, op, result)`` the result. The coroutine is named
    as the awaitable is, if it is one (its repr, "never awaited" warnings)."""
    start = perf_counter_ns()
    try:
        awaitable = call(*args, **kwargs)
    except BaseException as exc:
        _record(db, op, exc, start)
        raise
    completion = _completion(db, op, then, awaitable, start)
    if isinstance(awaitable, CoroutineType) and isinstance(completion, CoroutineType):
        completion.__name__ = awaitable.__name__
        completion.__qualname__ = awaitable.__qualname__
    return completion


async def _completion(db: Database, op: str, then: Callable[[Database, str, Any], None] | None,
                      awaitable: Awaitable[Any], start: int) -> Any:
    try:
        result = await awaitable
    except BaseException as exc:
        _record(db, op, exc, start)
        raise
    _record(db, op, None, start)
    if then is not None:
        then(db, op, result)
    return result


def _statement(args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    """The statement argument, by position or by the drivers' keyword names for it."""
    if args:
        return args[0]
    for name in ("query", "sql", "operation"):
        if name in kwargs:
            return kwargs[name]
    return None


DatabaseOf = Callable[[Any], "Database | None"]


def _statement_op(args: tuple[Any, ...], kwargs: dict[str, Any]) -> str:
    return operation(_statement(args, kwargs))


def _fixed_op(op: str) -> Callable[[tuple[Any, ...], dict[str, Any]], str]:
    return lambda args, kwargs: op


def _method(function: Callable[..., Any], database: DatabaseOf,
            op_of: Callable[[tuple[Any, ...], dict[str, Any]], str], rows: bool,
            nested: bool) -> Callable[..., Any]:
    """*function* timed under ``op_of(args, kwargs)``: what `statement_method` and
    `fixed_method` make."""

    @functools.wraps(function)
    def method(self: Any, *args: Any, **kwargs: Any) -> Any:
        db = None if suppressed() else database(self)
        if db is None:
            return function(self, *args, **kwargs)
        op = op_of(args, kwargs)
        if nested:
            with suppressing():
                result = timed(db, op, function, self, *args, **kwargs)
        else:
            result = timed(db, op, function, self, *args, **kwargs)
        if rows:
            returned_rows(db, op, self)
        return result

    return method


def _async_method(function: Callable[..., Any], database: DatabaseOf,
                  op_of: Callable[[tuple[Any, ...], dict[str, Any]], str],
                  rows: bool) -> Callable[..., Any]:
    """`_method` for a coroutine method: timed until it completes."""

    @functools.wraps(function)
    async def method(self: Any, *args: Any, **kwargs: Any) -> Any:
        db = None if suppressed() else database(self)
        if db is None:
            return await function(self, *args, **kwargs)
        op = op_of(args, kwargs)
        result = await timed_async(db, op, function, self, *args, **kwargs)
        if rows:
            returned_rows(db, op, self)
        return result

    return method


def statement_method(function: Callable[..., Any], database: DatabaseOf, *, rows: bool = True,
                     nested: bool = False) -> Callable[..., Any]:
    """*function* (``execute`` or ``executemany`` of a driver class), timed under the
    statement's keyword for the Database that ``database(self)`` finds (None: not timed).

    *rows*: record ``returned_rows`` after it; *nested*: statements that *function* runs
    through other instrumented methods (PyMySQL's ``executemany`` calls ``execute``) are
    not recorded again.
    """
    return _method(function, database, _statement_op, rows, nested)


def fixed_method(function: Callable[..., Any], database: DatabaseOf, op: str, *,
                 nested: bool = False) -> Callable[..., Any]:
    """*function* (``commit``, ``rollback``, ``callproc``) timed as *op*; see `statement_method`."""
    return _method(function, database, _fixed_op(op), False, nested)


def async_statement_method(function: Callable[..., Any], database: DatabaseOf, *,
                           rows: bool = True) -> Callable[..., Any]:
    """`statement_method` for a coroutine method: timed until it completes."""
    return _async_method(function, database, _statement_op, rows)


def async_fixed_method(function: Callable[..., Any], database: DatabaseOf, op: str) -> Callable[..., Any]:
    """`fixed_method` for a coroutine method."""
    return _async_method(function, database, _fixed_op(op), False)


# --- subclasses made through the drivers' factory hooks ---------------------------------
#
# `subclass(cls, hook)` is `cls` with `hook`'s timed methods. `hook` is a class derived
# from the driver's base (sqlite3.Cursor, ...), defining only timed methods and no
# state (`__slots__ = ()`). For the driver's base itself the result is `class X(hook)`;
# for a program's own class (psycopg2's RealDictCursor, a sqlite3.Connection subclass)
# it is `class X(cls, hook)`, whose method order (C3) puts `hook` right above the
# driver's base: the program's overrides run first and their `super()` calls reach the
# timed methods, then the driver's, each once. `X` has the name, qualified name, module
# and docstring of `cls`, so `repr()` of its instances reads as without us; the only
# state it adds is in slots (the C drivers' per-connection `Database`), never in
# `__dict__`.

_INSTRUMENTED_BASE = "__instrument_base__"
_subclasses: dict[tuple[type, object], type] = {}


def subclass(cls: type, hook: type, slots: tuple[str, ...] = ()) -> type:
    """*cls* with the timed methods of *hook* (a subclass of the driver's base class).

    Cached per (class, hook), so one program class gives one instrumented class; *cls*
    is returned as it is when it already has *hook*'s methods. *slots* are added for the
    instrumented objects' own state (kept out of ``__dict__``).
    """
    if issubclass(cls, hook):
        return cls
    key = (cls, hook)
    found = _subclasses.get(key)
    if found is None:
        base = hook.__mro__[1]
        bases = (hook,) if cls is base else (cls, hook)
        namespace = {
            "__module__": cls.__module__,
            "__qualname__": cls.__qualname__,
            "__doc__": cls.__doc__,
            "__slots__": slots,
            _INSTRUMENTED_BASE: cls,
        }
        # Two threads may build one at the same time: both get the first one stored (no
        # lock, which a fork could inherit held).
        found = _subclasses.setdefault(key, type(cls.__name__, bases, namespace))
    return found


class FactoryHooks:
    """A C driver's instrumented classes: subclasses of its connection and cursor classes,
    and of the user's own, made through its factory arguments (sqlite3, psycopg2).

    A driver's subclass sets `base_connection`, `base_cursor` and the hook classes whose
    methods are timed (`connection_hook`, `cursor_hook`).
    """

    base_connection: Any
    base_cursor: Any
    connection_hook: type
    cursor_hook: type

    def cursor_class(self, factory: Any) -> Any:
        """The instrumented subclass of cursor class *factory*; anything else (a function, or
        a wrong type the driver rejects with its own error) as it is."""
        if isinstance(factory, type) and issubclass(factory, self.base_cursor):
            return subclass(factory, self.cursor_hook)
        return factory

    def connection_class(self, factory: Any) -> Any:
        """The instrumented subclass of connection class *factory* (anything else as it is)."""
        if isinstance(factory, type) and issubclass(factory, self.base_connection):
            return subclass(factory, self.connection_hook, ("_instrument_db",))
        return factory


def instrumented(obj: Any) -> bool:
    """True if *obj*'s class is one of the subclasses made by `subclass`."""
    return any(_INSTRUMENTED_BASE in vars(kind) for kind in type(obj).__mro__)


# --- by hand, for any driver ---------------------------------------------------------------


def _name(namespace: Namespace | None, args: tuple[Any, ...], kwargs: dict[str, Any], connection: Any) -> str | None:
    if namespace is None:
        return None
    try:
        name = namespace(args, kwargs, connection)
    except Exception:  # a driver that does not know its database leaves the tag out
        return None
    return name or None


# Drivers instrumented by hand, through `instrument_connect`: where each connection is
# connected, and whether each connection class's `with conn:` commits.
_generic_databases = Databases("other_sql")
_commits_on_exit: dict[type, bool] = {}
_GENERIC = object()  # the `_subclasses` key of the classes made by `_adopt`


_connection_db = _generic_databases.get
_cursor_db = _generic_databases.of_cursor


def _adopt(obj: Any, methods: Callable[[type], dict[str, Any]]) -> bool:
    """Turn *obj* into an instance of a subclass of its class that has *methods*.

    Only for classes written in Python, whose instances may change class when the new
    one has the same layout (it adds no slots). C types refuse it: False.
    """
    cls = type(obj)
    if _INSTRUMENTED_BASE in vars(cls):
        return True
    key = (cls, _GENERIC)
    found = _subclasses.get(key)
    if found is None:
        namespace = {"__module__": cls.__module__, "__qualname__": cls.__qualname__, "__doc__": cls.__doc__,
                     "__slots__": (), _INSTRUMENTED_BASE: cls, **methods(cls)}
        try:
            found = _subclasses.setdefault(key, type(cls.__name__, (cls,), namespace))
        except TypeError:
            return False
    try:
        obj.__class__ = found
    except TypeError:
        return False
    return True


def _cursor_methods(cls: type) -> dict[str, Any]:
    found: dict[str, Any] = {}
    # A driver's executemany or callproc may run its own execute: not recorded twice.
    original = getattr(cls, "execute", None)
    if callable(original):
        found["execute"] = statement_method(original, _cursor_db)
    original = getattr(cls, "executemany", None)
    if callable(original):
        found["executemany"] = statement_method(original, _cursor_db, rows=False, nested=True)
    original = getattr(cls, "callproc", None)
    if callable(original):
        found["callproc"] = fixed_method(original, _cursor_db, "CALL", nested=True)
    return found


def _connection_methods(cls: type) -> dict[str, Any]:
    found: dict[str, Any] = {}
    for name, op in (("commit", "COMMIT"), ("rollback", "ROLLBACK")):
        original = getattr(cls, name, None)
        if callable(original):
            found[name] = fixed_method(original, _connection_db, op)
    cursor = getattr(cls, "cursor", None)
    if callable(cursor):

        @functools.wraps(cursor)
        def make_cursor(self: Any, *args: Any, **kwargs: Any) -> Any:
            made = cursor(self, *args, **kwargs)
            _adopt(made, _cursor_methods)
            return made

        found["cursor"] = make_cursor
    exit_ = getattr(cls, "__exit__", None)
    if callable(exit_) and _commits_on_exit.get(cls, False):

        @functools.wraps(exit_)
        def leave(self: Any, *exc_info: Any) -> Any:
            db = None if suppressed() else _connection_db(self)
            if db is None:
                return exit_(self, *exc_info)
            return timed(db, "COMMIT" if exc_info[0] is None else "ROLLBACK", exit_, self, *exc_info)

        found["__exit__"] = leave
    return found


def instrument_connect(
    module: ModuleType | Any,
    name: str = "connect",
    *,
    db_system: str,
    namespace: Namespace | None = None,
    commits_on_exit: bool = False,
) -> None:
    """Make ``module.<name>(...)`` return instrumented connections (idempotent).

    For drivers written in Python: each connection, and each cursor it makes, becomes an
    instance of a subclass of its own class whose ``execute``, ``executemany``,
    ``callproc``, ``commit`` and ``rollback`` are timed. A driver whose connection is a C
    type cannot be instrumented this way (its instances cannot change class): its
    connections are returned as they are, and a warning is logged once. sqlite3,
    psycopg2, psycopg 3 and PyMySQL have their own integrations, which need none of this.

    *db_system* is the ``db.system.name`` tag (``postgresql``, ``mysql``, ``sqlite``,
    ...); *namespace*, if given, computes ``db.namespace`` from the connect arguments
    and the new connection; *commits_on_exit* says that the driver's ``with conn:``
    commits (or rolls back), so that it is timed as such. Undo with
    `uninstrument_connect`.

    .. versionchanged:: 0.2.0 connections are the driver's own objects, never proxies.
    """
    if not isinstance(db_system, str) or not db_system:
        raise ValueError(f"db_system must be a non-empty str such as 'postgresql', got {db_system!r}")
    current = getattr(module, name)
    if not callable(current):
        raise TypeError(f"{getattr(module, '__name__', module)!r}.{name} is not callable")
    if hasattr(current, "__instrument_original__"):
        return

    def connect(*args: Any, **kwargs: Any) -> Any:
        connection = current(*args, **kwargs)
        _commits_on_exit[type(connection)] = commits_on_exit
        if not _adopt(connection, _connection_methods):
            _log.warn_once(
                ("dbapi-c-type", type(connection)),
                "instrument: %s.%s connections are a C type, which cannot be instrumented without a factory "
                "hook of the driver; they are left as they are",
                type(connection).__module__, type(connection).__qualname__,
            )
            return connection
        _generic_databases.put(connection, Database(db_system, _name(namespace, args, kwargs, connection)))
        return connection

    try:
        functools.update_wrapper(connect, current)
    except (AttributeError, TypeError):
        pass
    connect.__instrument_original__ = current  # type: ignore[attr-defined]
    setattr(module, name, connect)


def uninstrument_connect(module: ModuleType | Any, name: str = "connect") -> None:
    """Put back the ``connect`` that `instrument_connect` replaced. Connections made
    before keep their timed class."""
    current = getattr(module, name)
    original = getattr(current, "__instrument_original__", None)
    if original is not None:
        setattr(module, name, original)


# --- deprecated: the proxies are gone ------------------------------------------------------


def unwrap(obj: Any) -> Any:
    """*obj* itself: connections and cursors are the driver's own objects now.

    .. deprecated:: 0.2.0 there is no proxy to unwrap; pass the connection itself.
    """
    warnings.warn("dbapi.unwrap() is no longer needed: connections and cursors are the driver's own objects",
                  DeprecationWarning, stacklevel=2)
    return obj


def unwrapping(function: Callable[..., Any]) -> Callable[..., Any]:
    """*function* itself (see `unwrap`).

    .. deprecated:: 0.2.0 driver functions accept instrumented connections as they are.
    """
    warnings.warn("dbapi.unwrapping() is no longer needed: driver functions accept instrumented connections",
                  DeprecationWarning, stacklevel=2)
    return function


def wrap_connection(connection: Any, db_system: str, namespace: str | None = None, **_: Any) -> Any:
    """Instrument one existing connection of a driver written in Python, in place, and
    return it (see `instrument_connect`; a C-type connection is returned as it is).

    .. deprecated:: 0.2.0 use `instrument_connect`, or the driver's integration.
    """
    warnings.warn("dbapi.wrap_connection() is deprecated: use instrument_connect() or the driver's integration",
                  DeprecationWarning, stacklevel=2)
    if _adopt(connection, _connection_methods):
        _generic_databases.put(connection, Database(db_system, namespace))
    return connection
