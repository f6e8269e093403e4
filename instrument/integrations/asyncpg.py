"""asyncpg: every statement a connection, prepared statement or cursor runs, timed by
class-level hooks on asyncpg's own classes, awaited to completion.

asyncpg is not a DB-API driver; its classes are written in Python (the protocol below
them is C), so their public methods are replaced, in the class, by timed wrappers of
themselves. Objects keep their exact types; a pool's connection proxy finds the
wrappers through the class, as it finds every method. Recorded as DB-API's are
(`instrument.integrations.dbapi`): ``db.client.operation.duration`` (seconds) tagged
``db.system.name=postgresql``, ``db.namespace``, ``server.address``, ``server.port``,
``db.operation.name`` (the statement's keyword, see `_sql`) and ``error.type``; and
``db.client.response.returned_rows`` for the calls that return rows
(``fetch``, ``fetchmany``, ``fetchrow``, a cursor's ``fetch``).

* ``Connection``: ``execute``, ``executemany``, ``fetch``, ``fetchval``, ``fetchrow``,
  ``fetchmany``, ``prepare`` (``PREPARE``: a round trip), and the ``copy_*`` methods
  (``COPY``). A transaction's ``BEGIN``, ``COMMIT``, ``ROLLBACK`` and savepoints are
  statements asyncpg runs through ``execute``, so they are timed as such.
* ``PreparedStatement``: ``fetch``, ``fetchval``, ``fetchrow``, ``fetchmany``,
  ``executemany``, ``explain``, under the keyword of its statement.
* Cursors: each round trip (the first batch, every prefetch of an ``async for``, a
  ``fetch``/``fetchrow``) under its statement's keyword; ``forward`` as ``MOVE``.

A wrapper is a coroutine function where asyncpg's method is one; where it is a plain
function returning a coroutine (``connresource.guarded``: a prepared statement's methods, a
cursor's ``forward``, which refuse a connection released to its pool when called), so is the
wrapper, which calls it at once: it raises then, as without instrumentation.

Not timed: what a pool runs to reset a connection it takes back (``Connection.reset``),
and asyncpg's own type introspection. Never SQL text beyond its keyword, or arguments.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable
from contextvars import ContextVar
from types import ModuleType
from typing import Any

from .._metrics import HISTOGRAM
from . import Integration
from ._sql import operation
from ._tagged import Tagged
from .dbapi import KEYS, RETURNED_ROWS, Database, Databases, timed_async, timed_awaitable

SYSTEM = "postgresql"

_rows = Tagged(RETURNED_ROWS, HISTOGRAM, "{row}", KEYS[:5], integration="asyncpg")
# Set while asyncpg runs statements of its own (a pool's reset): a context variable, not a
# thread-local, because other tasks of the thread run while it awaits.
_internal: ContextVar[bool] = ContextVar("instrument.asyncpg_internal", default=False)


def _describe(connection: Any) -> Database:
    address = connection._addr  # (host, port), or a Unix socket's path
    params = connection._params
    if isinstance(address, tuple):
        return Database(SYSTEM, params.database, str(address[0]), int(address[1]))
    return Database(SYSTEM, params.database, str(address))


_databases = Databases(SYSTEM, _describe)
_UNKNOWN = Database(SYSTEM)

Operation = Callable[[Any, tuple[Any, ...], dict[str, Any]], str]
Rows = Callable[[Any], int | None]


def _query_argument(self: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> str:
    return operation(args[0] if args else kwargs.get("query"))


def _own_query(self: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> str:
    return operation(self._query)


def _fixed(op: str) -> Operation:
    return lambda self, args, kwargs: op


def _count(result: Any) -> int | None:
    return len(result) if isinstance(result, list) else None


def _one(result: Any) -> int | None:
    return 0 if result is None else 1


def _timed(function: Callable[..., Any], op_of: Operation, rows: Rows | None = None,
           connection: str = "_connection") -> Callable[..., Any]:
    """*function* timed under ``op_of(self, args, kwargs)`` for the database of ``self`` (a
    connection) or of ``getattr(self, connection)``: by a coroutine function if it is one,
    else (asyncpg's ``connresource.guarded`` methods, which refuse a released connection
    when called, not when awaited) by a plain function that calls it at once."""

    def where(self: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> tuple[Database, str]:
        owner = self if connection == "" else getattr(self, connection, None)
        return _databases.get(owner) or _UNKNOWN, op_of(self, args, kwargs)

    def counted(db: Database, op: str, result: Any) -> None:
        count = rows(result) if rows is not None else None
        if count is not None:
            _rows.record((*db.tags, op), count)

    if not inspect.iscoroutinefunction(function):

        @functools.wraps(function)
        def guarded(self: Any, *args: Any, **kwargs: Any) -> Any:
            if _internal.get():
                return function(self, *args, **kwargs)
            db, op = where(self, args, kwargs)
            return timed_awaitable(db, op, counted if rows is not None else None, function, self, *args, **kwargs)

        return guarded

    @functools.wraps(function)
    async def method(self: Any, *args: Any, **kwargs: Any) -> Any:
        if _internal.get():
            return await function(self, *args, **kwargs)
        db, op = where(self, args, kwargs)
        result = await timed_async(db, op, function, self, *args, **kwargs)
        if rows is not None:
            counted(db, op, result)
        return result

    return method


def _untimed(function: Callable[..., Any]) -> Callable[..., Any]:
    """*function*, whose statements are asyncpg's own (not timed)."""

    @functools.wraps(function)
    async def method(self: Any, *args: Any, **kwargs: Any) -> Any:
        token = _internal.set(True)
        try:
            return await function(self, *args, **kwargs)
        finally:
            _internal.reset(token)

    return method


def _with(op_of: Operation, rows: Rows | None = None, connection: str = "_connection") -> Callable[..., Any]:
    return lambda function: _timed(function, op_of, rows, connection)


class AsyncpgIntegration(Integration):
    identifier = "asyncpg"
    distribution = "asyncpg"
    min_version = (0, 26)

    def setup(self, module: ModuleType) -> None:  # asyncpg
        connection = module.connection.Connection
        for name, rows in (("execute", None), ("executemany", None), ("fetch", _count), ("fetchval", None),
                           ("fetchrow", _one), ("fetchmany", _count)):
            if hasattr(connection, name):
                self.patch(connection, name, _with(_query_argument, rows, connection=""))
        self.patch(connection, "prepare", _with(_fixed("PREPARE"), connection=""))
        for name in ("copy_from_table", "copy_from_query", "copy_to_table", "copy_records_to_table"):
            self.patch(connection, name, _with(_fixed("COPY"), connection=""))
        self.patch(connection, "reset", _untimed)

        statement = module.prepared_stmt.PreparedStatement
        for name, rows in (("fetch", _count), ("fetchval", None), ("fetchrow", _one), ("fetchmany", _count),
                           ("executemany", None), ("explain", None)):
            if hasattr(statement, name):
                self.patch(statement, name, _with(_own_query, rows))

        cursor = module.cursor
        for name, rows in (("_bind", None), ("_bind_exec", _count), ("_exec", _count)):  # one round trip each
            if hasattr(cursor.BaseCursor, name):
                self.patch(cursor.BaseCursor, name, _with(_own_query, rows))
        self.patch(cursor.Cursor, "forward", _with(_fixed("MOVE")))
