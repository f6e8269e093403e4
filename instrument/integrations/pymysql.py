"""PyMySQL: ``pymysql.connect`` (and its alias ``pymysql.Connect``) returns instrumented
connections.

``pymysql.connect`` is the ``Connection`` class itself; the module attributes are
replaced by a function that builds the connection and wraps it (see `dbapi`), while
``pymysql.connections.Connection`` stays the class, for ``isinstance`` checks and
subclasses. Cursors of any ``cursorclass`` (``DictCursor``, the unbuffered
``SSCursor``, ...), given at connect or at ``cursor()``, are instrumented, and
``callproc`` is timed as ``CALL``. PyMySQL's ``with conn:`` closes the connection
without committing, so it is not timed as a transaction.

``db.namespace`` is ``conn.db``, the database given at connect (it does not follow a
later ``USE`` or ``select_db``).
"""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version
from types import ModuleType
from typing import Any

from . import Integration
from .dbapi import connect_wrapper


def _namespace(args: tuple[Any, ...], kwargs: dict[str, Any], connection: Any) -> str | None:
    database = connection.db
    if isinstance(database, bytes):
        return database.decode(connection.encoding or "utf-8", "replace")
    return None if database is None else str(database)


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
        def make(original: Any) -> Any:
            return connect_wrapper(original, "mysql", _namespace)

        original = module.connect
        self.patch(module, "connect", make)
        if getattr(module, "Connect", None) is original:
            self.patch(module, "Connect", make)
