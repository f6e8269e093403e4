"""psycopg2: connections made by ``psycopg2.connect`` are instances of a subclass of
``psycopg2.extensions.connection``, made through its ``connection_factory`` hook.

psycopg2's connection and cursor are C types, and its C code reads them as such:
typecasters called with a cursor, ``register_type``, ``quote_ident``, adapters'
``prepare(conn)``, ``extensions.cursor(conn)``, ``Error.cursor``. Its own extension
points are the ones used here, as psycopg2's ``LoggingConnection`` uses them:
``psycopg2._connect`` (the C function that ``psycopg2.connect`` calls) is wrapped to pass
``connection_factory=`` a subclass of the class asked for (``extensions.connection`` by
default), and that connection's ``cursor()``
passes ``cursor_factory=`` a subclass of the cursor class it would have used (the
argument, else ``conn.cursor_factory``, else ``extensions.cursor``; see
`dbapi.subclass`). ``conn.cursor_factory`` itself is never changed. Timed: the
cursor's ``execute``, ``executemany`` and ``callproc`` (``CALL``), and the connection's
``commit`` and ``rollback``, which psycopg2's ``with conn:`` calls by name.

``db.namespace``, ``server.address`` and ``server.port`` come from ``conn.info``
(psycopg2 >= 2.8), or ``get_dsn_parameters()`` on older releases: neither sends a
query.

Not instrumented, and left exactly as they are: connections constructed directly
(``extensions.connection(dsn)``), which do not pass through ``connect``, and cursors of
an instrumented connection made by a ``cursor_factory`` that is not a class.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from importlib.metadata import PackageNotFoundError, version
from types import ModuleType
from typing import Any

from . import Integration
from .dbapi import Database, FactoryHooks, fixed_method, statement_method

SYSTEM = "postgresql"
_DISTRIBUTIONS = ("psycopg2", "psycopg2-binary")
_FACTORY_POSITION = 1  # cursor(name=None, cursor_factory=None, withhold=False, scrollable=None)


def _describe(connection: Any) -> Database:
    """Where *connection* is connected, from libpq's connection state (no query)."""
    info = getattr(connection, "info", None)
    if info is not None:
        port = info.port
        return Database(SYSTEM, info.dbname, info.host, int(port) if port else None)
    params = connection.get_dsn_parameters()
    port = params.get("port")
    return Database(SYSTEM, params.get("dbname"), params.get("host"), int(port) if port else None)


def _connection_db(connection: Any) -> Database:
    try:
        db: Database = connection._instrument_db
    except AttributeError:  # a connection made without connect(), by its class
        db = _remember(connection)
    return db


def _remember(connection: Any) -> Database:
    """Describe *connection* once, kept in the slot its instrumented class has for it."""
    try:
        db = _describe(connection)
    except Exception:
        return Database(SYSTEM)
    try:
        connection._instrument_db = db
    except AttributeError:  # a connection of psycopg2's own class (a cursor made by hand around it)
        pass
    return db


def _cursor_db(cursor: Any) -> Database:
    return _connection_db(cursor.connection)


class Hooks(FactoryHooks):
    """The instrumented classes built on one psycopg2's ``extensions`` module."""

    def __init__(self, extensions: Any) -> None:
        base_connection: Any = extensions.connection
        base_cursor: Any = extensions.cursor

        class _Cursor(base_cursor):  # type: ignore[misc]
            """The timed methods of every instrumented psycopg2 cursor class."""

            __slots__ = ()
            execute = statement_method(base_cursor.execute, _cursor_db)
            executemany = statement_method(base_cursor.executemany, _cursor_db, rows=False)
            callproc = fixed_method(base_cursor.callproc, _cursor_db, "CALL")

        hooks = self

        class _Connection(base_connection):  # type: ignore[misc]
            """The timed methods of every instrumented psycopg2 connection class."""

            __slots__ = ()

            def cursor(self, *args: Any, **kwargs: Any) -> Any:
                # psycopg2 takes a missing or None cursor_factory to mean conn.cursor_factory,
                # and None there to mean its own cursor class; conn.cursor_factory is left as it is.
                if len(args) > _FACTORY_POSITION:
                    factory = args[_FACTORY_POSITION] or self.cursor_factory or base_cursor
                    args = (*args[:_FACTORY_POSITION], hooks.cursor_class(factory), *args[_FACTORY_POSITION + 1:])
                else:
                    factory = kwargs.get("cursor_factory") or self.cursor_factory or base_cursor
                    kwargs["cursor_factory"] = hooks.cursor_class(factory)
                return base_connection.cursor(self, *args, **kwargs)

            cursor.__doc__ = base_connection.cursor.__doc__
            commit = fixed_method(base_connection.commit, _connection_db, "COMMIT")
            rollback = fixed_method(base_connection.rollback, _connection_db, "ROLLBACK")

        self.base_connection = base_connection
        self.base_cursor = base_cursor
        self.connection_hook: type = _Connection
        self.cursor_hook: type = _Cursor

    def connect_wrapper(self, original: Callable[..., Any]) -> Callable[..., Any]:
        """psycopg2's C ``_connect``, which ``psycopg2.connect`` calls, passing
        ``connection_factory=`` the instrumented subclass of the class asked for."""

        def _connect(*args: Any, **kwargs: Any) -> Any:
            if len(args) > 1:
                args = (args[0], self.connection_class(args[1] or self.base_connection), *args[2:])
            else:
                kwargs["connection_factory"] = self.connection_class(
                    kwargs.get("connection_factory") or self.base_connection)
            connection = original(*args, **kwargs)
            if isinstance(connection, self.connection_hook):
                _remember(connection)
            return connection

        return _connect


@functools.cache
def hooks(extensions: Any) -> Hooks:
    """One set of instrumented classes per psycopg2 (cached, so classes stay identical)."""
    return Hooks(extensions)


class Psycopg2Integration(Integration):
    identifier = "psycopg2"
    distribution = "psycopg2"
    min_version = (2, 9, 5)

    def requirement(self, module: ModuleType) -> tuple[str | None, tuple[int, ...]]:
        """psycopg2 is published as ``psycopg2`` and as ``psycopg2-binary``: whichever is installed."""
        for distribution in _DISTRIBUTIONS:
            try:
                version(distribution)
            except PackageNotFoundError:
                continue
            return distribution, self.min_version
        return self.distribution, self.min_version

    def setup(self, module: ModuleType) -> None:
        # Not psycopg2.connect itself, which stays psycopg2's own function: the C function it
        # calls, looked up in psycopg2's namespace at each call.
        self.patch(module, "_connect", hooks(module.extensions).connect_wrapper)
