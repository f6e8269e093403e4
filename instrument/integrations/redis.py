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
from time import perf_counter_ns
from types import ModuleType
from typing import Any

from .._metrics import HISTOGRAM, TIMER, error_name
from . import Integration
from ._tagged import Tagged
from .dbapi import DURATION, KEYS, Database, Databases

SYSTEM = "redis"
BATCH_SIZE = "db.client.operation.batch.size"

_duration = Tagged(DURATION, TIMER, "s", KEYS, integration="redis")
_batch = Tagged(BATCH_SIZE, HISTOGRAM, "{command}", KEYS[:5], integration="redis")

def _describe(pool: Any) -> Database:
    kwargs = pool.connection_kwargs
    db = kwargs.get("db")
    return Database(SYSTEM, None if db is None else str(db), kwargs.get("host") or kwargs.get("path"),
                    kwargs.get("port") if "host" in kwargs else None)


_databases = Databases(SYSTEM, _describe)
_UNKNOWN = Database(SYSTEM)

# (the server's tags, the command's name as redis-py gives it) -> the tag values of a call
# that succeeds: one entry per server and command, however many clients a program makes.
# Bounded: past the limit, each call computes its tags.
_CACHE_LIMIT = 4096
_tags: dict[tuple[tuple[Any, ...], object], tuple[Any, ...]] = {}


def _tags_of(db: Database, name: object) -> tuple[Any, ...]:
    key = (db.tags, name)
    found = _tags.get(key)
    if found is None:
        text = name.decode("ascii", "replace") if isinstance(name, bytes) else str(name)
        found = (*db.tags, text.upper() or "OTHER", None)
        if len(_tags) < _CACHE_LIMIT:
            _tags[key] = found
    return found


def _command_tags(client: Any, args: tuple[Any, ...]) -> tuple[Any, ...] | None:
    """A command's tags: ``db.operation.name`` is its name, ``args[0]``, upper case."""
    return _tags_of(_databases.get(client.connection_pool) or _UNKNOWN, args[0] if args else None)


def _pipeline_tags(pipeline: Any, args: tuple[Any, ...]) -> tuple[Any, ...] | None:
    """A pipeline's round trip: ``MULTI`` or ``PIPELINE``, its size recorded; None when nothing is sent."""
    stack = pipeline.command_stack
    if not stack and not pipeline.watching:
        return None
    tags = _tags_of(_databases.get(pipeline.connection_pool) or _UNKNOWN,
                    "MULTI" if pipeline.transaction or pipeline.explicit_transaction else "PIPELINE")
    _batch.record(tags[:5], len(stack))
    return tags


TagsOf = Callable[[Any, tuple[Any, ...]], "tuple[Any, ...] | None"]


def _timed(function: Callable[..., Any], tags_of: TagsOf) -> Callable[..., Any]:
    """*function* timed under ``tags_of(self, args)`` (None: not timed)."""

    @functools.wraps(function)
    def method(self: Any, *args: Any, **kwargs: Any) -> Any:
        tags = tags_of(self, args)
        if tags is None:
            return function(self, *args, **kwargs)
        start = perf_counter_ns()
        try:
            result = function(self, *args, **kwargs)
        except BaseException as exc:
            _duration.record((*tags[:5], error_name(type(exc))), perf_counter_ns() - start)
            raise
        _duration.record(tags, perf_counter_ns() - start)
        return result

    return method


def _async_timed(function: Callable[..., Any], tags_of: TagsOf) -> Callable[..., Any]:
    """`_timed` for a coroutine method: timed until it completes."""

    @functools.wraps(function)
    async def method(self: Any, *args: Any, **kwargs: Any) -> Any:
        tags = tags_of(self, args)
        if tags is None:
            return await function(self, *args, **kwargs)
        start = perf_counter_ns()
        try:
            result = await function(self, *args, **kwargs)
        except BaseException as exc:
            _duration.record((*tags[:5], error_name(type(exc))), perf_counter_ns() - start)
            raise
        _duration.record(tags, perf_counter_ns() - start)
        return result

    return method


class RedisIntegration(Integration):
    identifier = "redis"
    distribution = "redis"
    min_version = (4, 2)

    def setup(self, module: ModuleType) -> None:  # redis.client or redis.asyncio.client
        timed = _async_timed if module.__name__ == "redis.asyncio.client" else _timed
        self.patch(module.Redis, "execute_command", lambda f: timed(f, _command_tags))
        self.patch(module.Pipeline, "immediate_execute_command", lambda f: timed(f, _command_tags))
        self.patch(module.Pipeline, "execute", lambda f: timed(f, _pipeline_tags))
