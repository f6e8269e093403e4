"""psycopg (3): connections opened by ``psycopg.connect``, ``Connection.connect`` and
``AsyncConnection.connect`` are instrumented.

``connect`` is a class method, which pools and subclasses call on their own class
(``self.connection_class.connect(...)``), so the class methods are patched, not only
the module's ``psycopg.connect`` shortcut; a subclass's ``connect`` still builds an
instance of that subclass. Synchronous connections become `dbapi.ConnectionProxy`
objects, asynchronous ones `dbapi.AsyncConnectionProxy` objects, whose ``execute``,
``executemany``, ``commit`` and ``rollback`` are awaited and timed and which support
``async with`` and ``async for``.

psycopg 3 is written in Python (its C speed-ups included) and reads what it needs from
a connection or cursor by attribute, so ``row_factory=``, ``cursor_factory=``,
``psycopg.Cursor`` subclasses, ``TypeInfo.fetch(conn, ...)``, the JSON adapters and
``copy()`` all accept the proxies as they are.

``db.namespace`` is ``conn.info.dbname``, read from libpq without a query.
"""

from __future__ import annotations

import functools
from types import ModuleType
from typing import Any

from . import Integration
from .dbapi import async_connect_wrapper, connect_wrapper


def _namespace(args: tuple[Any, ...], kwargs: dict[str, Any], connection: Any) -> str | None:
    return str(connection.info.dbname)


class PsycopgIntegration(Integration):
    identifier = "psycopg"
    distribution = "psycopg"
    min_version = (3, 1)

    def setup(self, module: ModuleType) -> None:
        def plain(original: Any) -> Any:
            return connect_wrapper(original, "postgresql", _namespace, commits_on_exit=True)

        def sync_method(original: Any) -> Any:
            # `original` is the class method bound to Connection: call its function with
            # the class it is called on, so that subclasses get instances of themselves.
            wrapped = connect_wrapper(
                lambda cls, *args, **kwargs: original.__func__(cls, *args, **kwargs),
                "postgresql",
                _namespace,
                commits_on_exit=True,
            )
            return classmethod(_named(wrapped, original))

        def async_method(original: Any) -> Any:
            wrapped = async_connect_wrapper(
                lambda cls, *args, **kwargs: original.__func__(cls, *args, **kwargs),
                "postgresql",
                _namespace,
                commits_on_exit=True,
            )
            return classmethod(_named(wrapped, original))

        self.patch(module.Connection, "connect", sync_method)
        self.patch(module.AsyncConnection, "connect", async_method)
        self.patch(module, "connect", plain)


def _named(wrapper: Any, original: Any) -> Any:
    """*wrapper* showing *original*'s name, docstring and signature."""
    functools.update_wrapper(wrapper, original.__func__)
    return wrapper
