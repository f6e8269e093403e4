"""psycopg (3): the statements of every connection and cursor are timed, by class-level
hooks on psycopg's own classes.

psycopg 3's connections and cursors are classes written in Python (its optional C
speed-ups replace the adaptation and the libpq wrapper, not these classes), so their
methods are replaced, in the class, by timed wrappers of themselves:
``Cursor.execute``/``executemany``, ``ServerCursor.execute``, the ``Async`` versions of
both (awaited to completion), and ``commit``/``rollback`` of ``Connection`` and
``AsyncConnection`` (``with conn:`` calls them by name). Everything else is untouched:
``type(conn) is psycopg.Connection`` stays true, ``conn.cursor_factory`` and
``row_factory`` are the program's, and connections made by any route are instrumented
(``psycopg.connect``, a ``Connection`` subclass, a pool, one opened before the hook was
installed), as are cursors built by hand (``ClientCursor(conn)``). ``Connection.execute``
runs through ``Cursor.execute``, so it is timed once. A subclass that overrides
``execute`` and calls ``super()`` is timed once.

Why this is safe where a proxy was not: no object changes type, so psycopg's
``isinstance`` checks and its C speed-ups see exactly what they would; the wrappers
take and pass on any arguments, and return and raise what the original does.

``db.namespace``, ``server.address`` and ``server.port`` come from ``conn.info`` (libpq's
connection state, no query), read once per connection.
"""

from __future__ import annotations

import functools
from types import ModuleType
from typing import Any

from . import Integration
from .dbapi import (
    Database,
    Databases,
    async_fixed_method,
    async_statement_method,
    fixed_method,
    statement_method,
)

SYSTEM = "postgresql"


def _describe(connection: Any) -> Database:
    info = connection.info
    return Database(SYSTEM, info.dbname, info.host, info.port)


_databases = Databases(SYSTEM, _describe)


_connection_db = _databases.get
_cursor_db = _databases.of_cursor


class PsycopgIntegration(Integration):
    identifier = "psycopg"
    distribution = "psycopg"
    min_version = (3, 1)

    def setup(self, module: ModuleType) -> None:
        def execute(function: Any) -> Any:
            return statement_method(function, _cursor_db)

        def executemany(function: Any) -> Any:
            return statement_method(function, _cursor_db, rows=False)

        def async_execute(function: Any) -> Any:
            return async_statement_method(function, _cursor_db)

        def async_executemany(function: Any) -> Any:
            return async_statement_method(function, _cursor_db, rows=False)

        self.patch(module.Cursor, "execute", execute)
        self.patch(module.Cursor, "executemany", executemany)
        self.patch(module.ServerCursor, "execute", execute)
        self.patch(module.AsyncCursor, "execute", async_execute)
        self.patch(module.AsyncCursor, "executemany", async_executemany)
        self.patch(module.AsyncServerCursor, "execute", async_execute)
        for op in ("COMMIT", "ROLLBACK"):
            self.patch(module.Connection, op.lower(), functools.partial(fixed_method, database=_connection_db, op=op))
            self.patch(module.AsyncConnection, op.lower(),
                       functools.partial(async_fixed_method, database=_connection_db, op=op))
