"""sqlite3: connections made by ``sqlite3.connect`` are instances of a subclass of
``sqlite3.Connection``, made through its ``factory`` hook.

sqlite3's classes are C types: their methods cannot be patched, and its C code checks
for real ``Connection``/``Cursor`` instances (``Cursor(conn)``, ``backup``, the
``factory`` results). So ``connect`` is wrapped to pass ``factory=`` a subclass of the
class the program asked for (``sqlite3.Connection`` by default), and that connection's
``cursor()`` passes its ``factory`` a subclass of the cursor class asked for (see
`dbapi.subclass`). Timed: the cursor's ``execute`` and ``executemany``, the
connection's ``execute`` and ``executemany`` shortcuts, ``commit``, ``rollback``, and
leaving ``with conn:`` (as the COMMIT or ROLLBACK it performs, which sqlite3 does in C
without calling ``commit``). ``db.namespace`` is the database file's name (``:memory:``
for memory databases), without its directory or URI query.

Not instrumented, and left exactly as they are: connections made with a ``factory``
that is not a class (a function), cursors made with such a factory, and connections
constructed directly (``sqlite3.Connection(path)``), which do not pass through
``connect``.
"""

from __future__ import annotations

import functools
import os
import sys
from collections.abc import Callable
from types import ModuleType
from typing import Any

from .._suppress import suppressed
from . import Integration
from .dbapi import Database, FactoryHooks, fixed_method, statement_method, subclass, timed

SYSTEM = "sqlite"
_UNKNOWN = Database(SYSTEM)  # a connection made without connect() (by its class)
_FACTORY_POSITION = 5  # connect(database, timeout, detect_types, isolation_level, check_same_thread, factory, ...)


def _namespace(args: tuple[Any, ...], kwargs: dict[str, Any]) -> str | None:
    database = args[0] if args else kwargs.get("database")
    if database is None:
        return None
    path = os.fsdecode(database) if isinstance(database, (str, bytes, os.PathLike)) else str(database)
    path = path.split("?", 1)[0]
    if path.startswith("file:"):
        path = path[len("file:"):]
    return os.path.basename(path) or path or ":memory:"


def _connection_db(connection: Any) -> Database:
    try:
        db: Database = connection._instrument_db
    except AttributeError:
        return _UNKNOWN
    return db


def _cursor_db(cursor: Any) -> Database:
    return _connection_db(cursor.connection)


def _exit(function: Callable[..., Any]) -> Callable[..., Any]:
    """sqlite3's ``__exit__``, timed as the COMMIT or ROLLBACK it performs in C."""

    @functools.wraps(function)
    def __exit__(self: Any, *exc_info: Any) -> Any:
        if suppressed():
            return function(self, *exc_info)
        op = "COMMIT" if not exc_info or exc_info[0] is None else "ROLLBACK"
        return timed(_connection_db(self), op, function, self, *exc_info)

    return __exit__


class Hooks(FactoryHooks):
    """The instrumented classes built on one sqlite3 module's Connection and Cursor."""

    def __init__(self, module: Any) -> None:
        base_connection: Any = module.Connection
        base_cursor: Any = module.Cursor

        class _Cursor(base_cursor):  # type: ignore[misc]
            """The timed methods of every instrumented sqlite3 cursor class."""

            __slots__ = ()
            execute = statement_method(base_cursor.execute, _cursor_db)
            executemany = statement_method(base_cursor.executemany, _cursor_db, rows=False)

        default_cursor = subclass(base_cursor, _Cursor)
        hooks = self

        class _Connection(base_connection):  # type: ignore[misc]
            """The timed methods of every instrumented sqlite3 connection class."""

            __slots__ = ()

            def cursor(self, *args: Any, **kwargs: Any) -> Any:
                if args:
                    args = (hooks.cursor_class(args[0]), *args[1:])
                elif "factory" in kwargs:
                    kwargs["factory"] = hooks.cursor_class(kwargs["factory"])
                else:
                    args = (default_cursor,)
                return base_connection.cursor(self, *args, **kwargs)

            # sqlite3's own shortcuts make a plain cursor in C and run the statement on it;
            # these make the same cursor, of the instrumented class, and run it through its
            # timed method (the program's cursor() override is not called, as in C).
            def execute(self, *args: Any, **kwargs: Any) -> Any:
                return base_connection.cursor(self, default_cursor).execute(*args, **kwargs)

            def executemany(self, *args: Any, **kwargs: Any) -> Any:
                return base_connection.cursor(self, default_cursor).executemany(*args, **kwargs)

            cursor.__doc__ = base_connection.cursor.__doc__
            execute.__doc__ = base_connection.execute.__doc__
            executemany.__doc__ = base_connection.executemany.__doc__
            commit = fixed_method(base_connection.commit, _connection_db, "COMMIT")
            rollback = fixed_method(base_connection.rollback, _connection_db, "ROLLBACK")
            __exit__ = _exit(base_connection.__exit__)

        self.base_connection = base_connection
        self.base_cursor = base_cursor
        self.connection_hook: type = _Connection
        self.cursor_hook: type = _Cursor

    def connect_wrapper(self, original: Callable[..., Any]) -> Callable[..., Any]:
        """``sqlite3.connect``, passing ``factory=`` the instrumented subclass of the class asked for."""

        def connect(*args: Any, **kwargs: Any) -> Any:
            if len(args) > _FACTORY_POSITION:
                factory = self.connection_class(args[_FACTORY_POSITION])
                args = (*args[:_FACTORY_POSITION], factory, *args[_FACTORY_POSITION + 1:])
            else:
                kwargs["factory"] = self.connection_class(kwargs.get("factory", self.base_connection))
            connection = original(*args, **kwargs)
            if isinstance(connection, self.connection_hook):
                connection._instrument_db = Database(SYSTEM, _namespace(args, kwargs))  # type: ignore[attr-defined]
            return connection

        return connect


@functools.cache
def hooks(module: Any) -> Hooks:
    """One set of instrumented classes per sqlite3 module (cached, so classes stay identical)."""
    return Hooks(module)


class Sqlite3Integration(Integration):
    identifier = "sqlite3"

    def setup(self, module: ModuleType) -> None:
        found = hooks(module)
        self.patch(module, "connect", found.connect_wrapper)
        dbapi2 = sys.modules.get("sqlite3.dbapi2")
        if dbapi2 is not None and dbapi2 is not module:
            self.patch(dbapi2, "connect", found.connect_wrapper)
