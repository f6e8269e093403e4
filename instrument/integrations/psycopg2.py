"""psycopg2: ``psycopg2.connect`` returns instrumented connections.

psycopg2's connection and cursor are C types, so ``connect`` is wrapped and its
connections and cursors are proxies (see `dbapi`). Whatever the connection or cursor
factory (``connection_factory=``, ``cursor_factory=`` at connect or at ``cursor()``,
``RealDictCursor``, named server-side cursors), the real object does the work.

psycopg2 checks in C that some arguments are its own connection or cursor type, which
a proxy can never be. Those functions are patched to unwrap proxies first:
``register_type`` (behind ``register_uuid``, ``register_default_json``,
``register_hstore``, ``register_range``, ``register_composite``, ``register_ipaddress``),
``quote_ident`` (behind ``sql.Identifier``), ``encrypt_password`` and
``sql.Literal.as_string``. Uninstalling puts them back.

``db.namespace`` is ``conn.info.dbname`` (psycopg2 >= 2.8), or the ``dbname`` of
``get_dsn_parameters()`` on older releases: neither sends a query.
"""

from __future__ import annotations

import importlib
import sys
from importlib.metadata import PackageNotFoundError, version
from types import ModuleType
from typing import Any

from . import Integration
from .dbapi import connect_wrapper, unwrapping

# Functions that take a connection or cursor and check its type in C.
_C_CHECKED = ("register_type", "quote_ident", "encrypt_password")
# psycopg2 modules that bind those functions under their own names when imported.
_BINDERS = (
    "psycopg2._psycopg",
    "psycopg2.extensions",
    "psycopg2._json",
    "psycopg2._range",
    "psycopg2._ipaddress",
    "psycopg2.extras",
)
_DISTRIBUTIONS = ("psycopg2", "psycopg2-binary")


def _namespace(args: tuple[Any, ...], kwargs: dict[str, Any], connection: Any) -> str | None:
    info = getattr(connection, "info", None)
    if info is not None:
        return str(info.dbname)
    found = connection.get_dsn_parameters().get("dbname")
    return None if found is None else str(found)


class Psycopg2Integration(Integration):
    identifier = "psycopg2"
    distribution = "psycopg2"
    min_version = (2, 7)

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
        def make(original: Any) -> Any:
            return connect_wrapper(original, "postgresql", _namespace, commits_on_exit=True)

        self.patch(module, "connect", make)
        # Loaded now so that Literal.as_string can be patched; it is small and imports
        # nothing beyond psycopg2 itself.
        sql = importlib.import_module("psycopg2.sql")
        self.patch(sql.Literal, "as_string", unwrapping)
        core = importlib.import_module("psycopg2._psycopg")
        for name in _C_CHECKED:
            original = getattr(core, name, None)
            if original is None:
                continue
            # Modules imported later bind the patched function from psycopg2._psycopg
            # or psycopg2.extensions; those already imported are patched one by one.
            for binder in _BINDERS:
                owner = sys.modules.get(binder)
                if owner is not None and getattr(owner, name, None) is original:
                    self.patch(owner, name, unwrapping)
