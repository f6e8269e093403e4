"""sqlite3: ``sqlite3.connect`` returns instrumented connections.

The C ``Connection`` type cannot be patched, so ``connect`` is wrapped instead (see
`dbapi`). ``with conn:`` is timed as the COMMIT or ROLLBACK it performs.
``db.namespace`` is the database file's name (``:memory:`` for memory databases),
without its directory or URI query.
"""

from __future__ import annotations

import os
import sys
from types import ModuleType
from typing import Any

from . import Integration
from .dbapi import connect_wrapper


def _namespace(args: tuple[Any, ...], kwargs: dict[str, Any], connection: Any) -> str | None:
    database = args[0] if args else kwargs.get("database")
    if database is None:
        return None
    path = os.fsdecode(database) if isinstance(database, (str, bytes, os.PathLike)) else str(database)
    path = path.split("?", 1)[0]
    if path.startswith("file:"):
        path = path[len("file:"):]
    return os.path.basename(path) or path or ":memory:"


class Sqlite3Integration(Integration):
    identifier = "sqlite3"

    def setup(self, module: ModuleType) -> None:
        def make(original: Any) -> Any:
            return connect_wrapper(original, "sqlite", _namespace, commits_on_exit=True)

        self.patch(module, "connect", make)
        dbapi2 = sys.modules.get("sqlite3.dbapi2")
        if dbapi2 is not None and dbapi2 is not module:
            self.patch(dbapi2, "connect", make)
