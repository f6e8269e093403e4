"""Integrations: hooks that instrument a library when it is imported.

Each integration has an identifier, the modules whose import installs it, the
distribution and minimum version it supports, an idempotent ``install(module)`` and
an ``uninstall()`` that puts the original functions back. They are listed here, in
`REGISTRY`, by dotted path, so listing them imports nothing; `instrument.auto.install()`
schedules them with post-import hooks. A `Group` names several at once: ``wsgi`` is
every WSGI server and framework integration (``wsgi.gunicorn``, ``wsgi.flask``, ...), ``asgi``
every ASGI one.

To add an integration: a module here (or in a package such as ``wsgi/``) with an
`Integration` subclass, and one `Entry` in `REGISTRY`. Its failures follow `_failures`.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from types import ModuleType
from typing import Any, NamedTuple

from .. import _log


class Entry(NamedTuple):
    """One integration."""

    modules: tuple[str, ...]  # importing any of these calls the integration's install(module)
    target: str  # "module:Class" of the Integration


class Group(NamedTuple):
    """A name for several integrations, accepted wherever one integration's identifier is."""

    members: tuple[str, ...]


# Every name `instrument.auto` and ``--disable`` accept.
REGISTRY: dict[str, Entry | Group] = {
    "aiohttp_client": Entry(("aiohttp.client",), "instrument.integrations.aiohttp_client:AiohttpClientIntegration"),
    "aiohttp_server": Entry(
        ("aiohttp.web_protocol",), "instrument.integrations.aiohttp_server:AiohttpServerIntegration"
    ),
    "asgi": Group(("asgi.django", "asgi.fastapi", "asgi.hypercorn", "asgi.starlette", "asgi.uvicorn")),
    "asgi.django": Entry(("django.core.handlers.asgi",), "instrument.integrations.asgi.django:DjangoIntegration"),
    "asgi.fastapi": Entry(("fastapi.routing",), "instrument.integrations.asgi.fastapi:FastAPIIntegration"),
    "asgi.hypercorn": Entry(("hypercorn.app_wrappers",), "instrument.integrations.asgi.hypercorn:HypercornIntegration"),
    "asgi.starlette": Entry(("starlette.applications",), "instrument.integrations.asgi.starlette:StarletteIntegration"),
    "asgi.uvicorn": Entry(("uvicorn.config",), "instrument.integrations.asgi.uvicorn:UvicornIntegration"),
    "asyncio": Entry(("asyncio.base_events", "uvloop"), "instrument.integrations.asyncio_lag:AsyncioLagIntegration"),
    "asyncpg": Entry(("asyncpg",), "instrument.integrations.asyncpg:AsyncpgIntegration"),
    "http_client": Entry(("http.client",), "instrument.integrations.http_client:HttpClientIntegration"),
    "httpx": Entry(("httpx",), "instrument.integrations.httpx:HttpxIntegration"),
    "psycopg": Entry(("psycopg",), "instrument.integrations.psycopg:PsycopgIntegration"),
    "psycopg2": Entry(("psycopg2",), "instrument.integrations.psycopg2:Psycopg2Integration"),
    "pymysql": Entry(("pymysql",), "instrument.integrations.pymysql:PyMySQLIntegration"),
    "redis": Entry(("redis.client", "redis.asyncio.client"), "instrument.integrations.redis:RedisIntegration"),
    "requests": Entry(("requests",), "instrument.integrations.requests:RequestsIntegration"),
    "sqlite3": Entry(("sqlite3",), "instrument.integrations.sqlite3:Sqlite3Integration"),
    "urllib3": Entry(("urllib3",), "instrument.integrations.urllib3:Urllib3Integration"),
    "wsgi": Group(("wsgi.django", "wsgi.flask", "wsgi.gunicorn", "wsgi.uwsgi", "wsgi.waitress", "wsgi.wsgiref")),
    "wsgi.django": Entry(("django.core.handlers.wsgi",), "instrument.integrations.wsgi.django:DjangoIntegration"),
    "wsgi.flask": Entry(("flask",), "instrument.integrations.wsgi.flask:FlaskIntegration"),
    "wsgi.gunicorn": Entry(("gunicorn.app.base",), "instrument.integrations.wsgi.gunicorn:GunicornIntegration"),
    # uwsgi makes its module without an import; `wsgi.uwsgi.watch` has it noticed.
    "wsgi.uwsgi": Entry(("uwsgi",), "instrument.integrations.wsgi.uwsgi:UwsgiIntegration"),
    "wsgi.waitress": Entry(("waitress",), "instrument.integrations.wsgi.waitress:WaitressIntegration"),
    "wsgi.wsgiref": Entry(("wsgiref.simple_server",), "instrument.integrations.wsgi.wsgiref:WsgirefIntegration"),
}


def integrations() -> list[str]:
    """The identifiers of every integration (groups left out), sorted."""
    return sorted(name for name, entry in REGISTRY.items() if isinstance(entry, Entry))


def expand(names: list[str]) -> list[str]:
    """*names* (known to `REGISTRY`) with each group replaced by its members, in order, once each."""
    found: dict[str, None] = {}
    for name in names:
        entry = REGISTRY[name]
        for identifier in entry.members if isinstance(entry, Group) else (name,):
            found[identifier] = None
    return list(found)


def installed_version(distribution: str) -> str | None:
    """The installed version of *distribution*, from its metadata; None if it has none."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(distribution)
    except PackageNotFoundError:  # e.g. built from source, or from a distribution package
        return None


def parse_version(text: str) -> tuple[int, ...]:
    """The leading numeric release of a version string: "2.31.0rc1" -> (2, 31, 0)."""
    parts = []
    for piece in text.split("."):
        digits = ""
        for char in piece:
            if not char.isdigit():
                break
            digits += char
        if not digits:
            break
        parts.append(int(digits))
        if len(digits) != len(piece):
            break
    return tuple(parts)


class Integration:
    """Base class: subclasses set the class attributes and implement `setup`.

    `setup` runs once per trigger module (the `Entry` may list several), after the
    version check of `requirement`.
    """

    identifier = ""
    distribution: str | None = None  # None: part of the standard library
    min_version: tuple[int, ...] = ()  # the lowest release tested: tox -e floors (tests/floors.py)

    def __init__(self) -> None:
        self.installed = False
        self._done: set[str] = set()
        self._patches: list[tuple[Any, str, Any, bool]] = []

    def setup(self, module: ModuleType) -> None:
        """Patch *module* (and what else it needs) with `patch`."""
        raise NotImplementedError

    def requirement(self, module: ModuleType) -> tuple[str | None, tuple[int, ...]]:
        """(distribution, minimum version) that *module* must come from."""
        return self.distribution, self.min_version

    def version(self, module: ModuleType, distribution: str | None = None) -> str | None:
        """The version of *distribution* that *module* comes from: its ``__version__``, else the
        distribution's metadata; None for the standard library or when neither says."""
        distribution = distribution or self.distribution
        if distribution is None:
            return None
        found = getattr(module, "__version__", None)
        if isinstance(found, str):
            return found
        return installed_version(distribution)

    def installed_for(self, module_name: str) -> bool:
        """Whether `install` has patched for trigger module *module_name*."""
        return module_name in self._done

    def install(self, module: ModuleType) -> bool:
        """Install for *module* once; skip (with one log line) a library that is too old."""
        name = module.__name__
        if name in self._done:
            return True
        distribution, minimum = self.requirement(module)
        found = self.version(module, distribution)
        if minimum and found is not None and parse_version(found) < minimum:
            _log.warn_once(
                ("too-old", self.identifier, name),
                "instrument: integration %r needs %s >= %s, found %s; not installed",
                self.identifier,
                distribution,
                ".".join(map(str, minimum)),
                found,
            )
            return False
        applied = len(self._patches)
        try:
            self.setup(module)
        except Exception:
            self._undo(applied)  # this module's patches only; other trigger modules keep theirs
            raise
        self._done.add(name)
        self.installed = True
        return True

    def uninstall(self) -> None:
        """Put every patched attribute back as it was."""
        self._done.clear()
        self._undo(0)
        self.installed = False

    def _undo(self, keep: int) -> None:
        """Restore the patches made after the first *keep*, newest first."""
        while len(self._patches) > keep:
            owner, name, original, owned = self._patches.pop()
            if owned:
                setattr(owner, name, original)
            else:
                delattr(owner, name)  # it was inherited: remove our override

    def patch(self, owner: Any, name: str, make: Callable[[Any], Any]) -> None:
        """Replace ``owner.name`` with ``make(original)``, remembering the original."""
        namespace = vars(owner) if isinstance(owner, type) else None
        owned = namespace is None or name in namespace
        original = namespace[name] if namespace is not None and owned else getattr(owner, name)
        current = getattr(owner, name)
        replacement = make(current)
        if callable(current) and callable(replacement) and replacement is not current and not isinstance(current, type):
            try:
                functools.update_wrapper(replacement, current)
                replacement.__instrument_original__ = current
            except (AttributeError, TypeError):  # a builtin or a proxy that refuses attributes
                pass
        setattr(owner, name, replacement)
        self._patches.append((owner, name, original, owned))


def _entry(identifier: str) -> Entry:
    entry = REGISTRY[identifier]
    if not isinstance(entry, Entry):
        raise ValueError(f"{identifier!r} names a group of integrations, not one")
    return entry


def triggers(identifier: str) -> tuple[str, ...]:
    """The modules whose import installs integration *identifier*."""
    return _entry(identifier).modules


def load(identifier: str) -> type[Integration]:
    """The class of integration *identifier* (importing its module)."""
    module_name, _, attribute = _entry(identifier).target.partition(":")
    from importlib import import_module

    cls: type[Integration] = getattr(import_module(module_name), attribute)
    return cls
