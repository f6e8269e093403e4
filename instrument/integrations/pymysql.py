"""PyMySQL: the statements of every connection and cursor are timed, by class-level hooks
on PyMySQL's own classes.

PyMySQL is written in Python, and every cursor class (``DictCursor``, the unbuffered
``SSCursor``, ...) inherits ``execute``, ``executemany`` and ``callproc`` from
``pymysql.cursors.Cursor``; those three, and ``commit``/``rollback`` of
``pymysql.connections.Connection``, are replaced in their class by timed wrappers of
themselves. So ``pymysql.connect`` stays the ``Connection`` class, every object keeps
its exact type, and connections made by any route (``pymysql.connect``,
``Connection(...)``, one opened before the hook was installed) are instrumented.
``executemany`` runs ``execute`` once per row or batch: it is timed as one operation and
those inner calls are not recorded again. ``callproc`` is timed as ``CALL``. PyMySQL's
``with conn:`` closes the connection without committing, so it is not timed.

``db.namespace`` is ``conn.db``, the database given at connect (it does not follow a
later ``USE`` or ``select_db``); ``server.address`` and ``server.port`` are ``conn.host``
and ``conn.port``.
"""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version
from types import ModuleType
from typing import Any

from . import Integration
from .dbapi import Database, Databases, fixed_method, statement_method

SYSTEM = "mysql"


def _describe(connection: Any) -> Database:
    database = connection.db
    if isinstance(database, bytes):
        database = database.decode(connection.encoding or "utf-8", "replace")
    port = connection.port
    return Database(SYSTEM, None if database is None else str(database), connection.host,
                    port if type(port) is int else None)


_databases = Databases(SYSTEM, _describe)


_connection_db = _databases.get
# None once the cursor is closed: PyMySQL raises its own error, which is not timed.
_cursor_db = _databases.of_cursor


class PyMySQLIntegration(Integration):
    identifier = "pymysql"
    distribution = "PyMySQL"
    min_version = (1, 0)

    def version(self, module: ModuleType, distribution: str | None = None) -> str | None:
        """PyMySQL's own release: its ``__version__`` imitates mysqlclient's, for Django."""
        found = getattr(module, "VERSION_STRING", None)
        if isinstance(found, str):
            return found
        try:
            return version(distribution or "PyMySQL")
        except PackageNotFoundError:
            return None

    def setup(self, module: ModuleType) -> None:
        # pymysql imports both modules itself.
        cursor, connection = module.cursors.Cursor, module.connections.Connection
        self.patch(cursor, "execute", lambda f: statement_method(f, _cursor_db))
        self.patch(cursor, "executemany", lambda f: statement_method(f, _cursor_db, rows=False, nested=True))
        self.patch(cursor, "callproc", lambda f: fixed_method(f, _cursor_db, "CALL", nested=True))
        self.patch(connection, "commit", lambda f: fixed_method(f, _connection_db, "COMMIT"))
        self.patch(connection, "rollback", lambda f: fixed_method(f, _connection_db, "ROLLBACK"))
