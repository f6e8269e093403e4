"""redis-py: every command a client sends, and every pipeline or transaction, timed by
class-level hooks on redis-py's own classes (sync and asyncio).

``db.client.operation.duration`` (seconds), tagged ``db.system.name=redis``,
``db.namespace`` (the database index), ``server.address``, ``server.port`` (from the
client's connection pool, no query), ``db.operation.name`` and ``error.type`` when the
call raises (the exception propagates unchanged):

* a command (``Redis.execute_command``, and a pipeline's immediate commands while it
  watches keys): the command's name as redis-py sends it, upper case (``GET``, ``SET``,
  ``CLIENT SETNAME``);
* a pipeline's ``execute``: ``MULTI`` for a transaction, ``PIPELINE`` otherwise, one
  record for its round trip; its number of commands goes to the distribution
  ``db.client.operation.batch.size`` (``{command}``) under the same tags.

Never keys, values or arguments. Clients keep their types (``redis.Redis``,
``redis.asyncio.Redis``): only methods of the classes are replaced, by wrappers that pass
every argument and return or raise what the original does. Cluster clients are not
instrumented.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from types import ModuleType
from typing import Any

from .._metrics import HISTOGRAM
from . import Integration
from ._tagged import Tagged
from .dbapi import KEYS, Database, Databases, timed, timed_async

SYSTEM = "redis"
BATCH_SIZE = "db.client.operation.batch.size"

_batch = Tagged(BATCH_SIZE, HISTOGRAM, "{command}", KEYS[:5], integration="redis")

_OPS_LIMIT = 1024  # distinct command names whose tag is cached
_ops: dict[object, str] = {}


def _operation(args: tuple[Any, ...]) -> str:
    """The command's name, upper case: ``args[0]`` as redis-py passes it."""
    name = args[0] if args else None
    found = _ops.get(name)
    if found is None:
        text = name.decode("ascii", "replace") if isinstance(name, bytes) else str(name)
        found = text.upper() or "OTHER"
        if len(_ops) < _OPS_LIMIT:
            _ops[name] = found
    return found


def _describe(pool: Any) -> Database:
    kwargs = pool.connection_kwargs
    db = kwargs.get("db")
    return Database(SYSTEM, None if db is None else str(db), kwargs.get("host") or kwargs.get("path"),
                    kwargs.get("port") if "host" in kwargs else None)


_databases = Databases(SYSTEM, _describe)
_UNKNOWN = Database(SYSTEM)


def _database(client: Any) -> Database:
    """The tags of *client*'s server, described once per connection pool."""
    return _databases.get(client.connection_pool) or _UNKNOWN


def _command(function: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(function)
    def execute_command(self: Any, *args: Any, **options: Any) -> Any:
        return timed(_database(self), _operation(args), function, self, *args, **options)

    return execute_command


def _async_command(function: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(function)
    async def execute_command(self: Any, *args: Any, **options: Any) -> Any:
        return await timed_async(_database(self), _operation(args), function, self, *args, **options)

    return execute_command


def _batch_of(pipeline: Any) -> tuple[Database, str] | None:
    """The tags of a pipeline's round trip, its size recorded; None when ``execute`` sends nothing."""
    if not pipeline.command_stack and not pipeline.watching:
        return None
    db = _database(pipeline)
    op = "MULTI" if pipeline.transaction or pipeline.explicit_transaction else "PIPELINE"
    _batch.record((*db.tags, op), len(pipeline.command_stack))
    return db, op


def _execute(function: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(function)
    def execute(self: Any, *args: Any, **kwargs: Any) -> Any:
        batch = _batch_of(self)
        if batch is None:
            return function(self, *args, **kwargs)
        return timed(*batch, function, self, *args, **kwargs)

    return execute


def _async_execute(function: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(function)
    async def execute(self: Any, *args: Any, **kwargs: Any) -> Any:
        batch = _batch_of(self)
        if batch is None:
            return await function(self, *args, **kwargs)
        return await timed_async(*batch, function, self, *args, **kwargs)

    return execute


class RedisIntegration(Integration):
    identifier = "redis"
    distribution = "redis"
    min_version = (4, 2)

    def setup(self, module: ModuleType) -> None:  # redis.client or redis.asyncio.client
        if module.__name__ == "redis.asyncio.client":
            command, execute = _async_command, _async_execute
        else:
            command, execute = _command, _execute
        self.patch(module.Redis, "execute_command", command)
        self.patch(module.Pipeline, "immediate_execute_command", command)
        self.patch(module.Pipeline, "execute", execute)
