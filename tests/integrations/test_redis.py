"""redis-py against a real redis-server on 127.0.0.1: every command, pipeline and transaction
timed once under its command name, sync and asyncio, never with keys or values; clients keep
their types and results."""

from __future__ import annotations

import asyncio

import pytest

import instrument.auto
from instrument.testing import capture

from ..helpers import require_module
from .db_servers import operations

redis_py = require_module("redis")  # the fixture `redis` is the server
redis_asyncio = require_module("redis.asyncio")  # `import redis` alone does not import it (4.2 does not)

DURATION = "db.client.operation.duration"
BATCH = "db.client.operation.batch.size"
SECRET_KEY = "loan:4711:ssn"
SECRET_VALUE = "078-05-1120"


@pytest.fixture(autouse=True)
def instrumented():
    instrument.auto.install(include=["redis"])
    yield
    instrument.auto.uninstall()


def client(server, cls=redis_py.Redis):
    return cls(host=server.host, port=server.port, password=server.password, db=0)


async def close(r):
    """Close an asyncio client: ``aclose()`` from redis 5.0.1, ``close()`` (deprecated since) before."""
    await (r.aclose() if hasattr(r, "aclose") else r.close())


def batches(captured):
    """{db.operation.name: [(count, sum)]} of the batch-size distribution."""
    return {point.tags["db.operation.name"]: (point.histogram.count, point.histogram.sum)
            for point in captured.find(BATCH)}


def assert_nothing_secret(captured):
    for point in captured.find(DURATION) + captured.find(BATCH):
        assert SECRET_KEY not in repr(point.tags) and SECRET_VALUE not in repr(point.tags)


class TestSyncClient:
    def test_commands_timed_by_name_with_server_tags(self, redis):
        """SET, GET and DEL: one record each, tagged system, database index, address and port."""
        r = client(redis)
        with capture() as captured:
            assert r.set(SECRET_KEY, SECRET_VALUE) is True
            assert SECRET_VALUE.encode() == r.get(SECRET_KEY)
            assert 1 == r.delete(SECRET_KEY)
        assert {("SET", None): 1, ("GET", None): 1, ("DEL", None): 1} == operations(captured)
        assert {"db.system.name": "redis", "db.namespace": "0", "server.address": "127.0.0.1",
                "server.port": redis.port, "db.operation.name": "GET"} == captured.find(
                    DURATION, {"db.operation.name": "GET"})[0].tags
        assert type(r) is redis_py.Redis
        assert_nothing_secret(captured)

    def test_error_is_tagged_and_propagates(self, redis):
        """INCR on a string (sent as INCRBY): redis-py's ResponseError reaches the program, its
        qualified class name the error.type."""
        r = client(redis)
        r.set("not-a-number", "x")
        with capture() as captured, pytest.raises(redis_py.ResponseError):
            r.incr("not-a-number")
        assert {("INCRBY", "redis.exceptions.ResponseError"): 1} == operations(captured)

    def test_pipeline_is_one_round_trip_with_its_batch_size(self, redis):
        """A pipeline of three commands: one PIPELINE record and a batch size of 3; the commands
        queued are not timed one by one."""
        r = client(redis)
        with capture() as captured:
            pipe = r.pipeline(transaction=False)
            pipe.set("a", 1).incr("a").get("a")
            assert [True, 2, b"2"] == pipe.execute()
        assert {("PIPELINE", None): 1} == operations(captured)
        assert {"PIPELINE": (1, 3)} == batches(captured)

    def test_transaction_with_watch(self, redis):
        """WATCH runs at once (timed as a command); the transaction is one MULTI record of its size."""
        r = client(redis)
        r.set("balance", 10)
        with capture() as captured:
            with r.pipeline() as pipe:
                pipe.watch("balance")
                balance = int(pipe.get("balance"))
                pipe.multi()
                pipe.set("balance", balance - 3)
                pipe.incr("withdrawals")
                assert [True, 1] == pipe.execute()
        counts = operations(captured)
        assert (1, 1, 1) == (counts[("WATCH", None)], counts[("GET", None)], counts[("MULTI", None)])
        assert {"MULTI": (1, 2)} == batches(captured)
        r.delete("withdrawals")

    def test_uninstall_restores_the_methods(self, redis):
        """After uninstall nothing is recorded."""
        instrument.auto.uninstall()
        with capture() as captured:
            client(redis).ping()
        assert [] == captured.find(DURATION)


class TestAsyncioClient:
    def test_commands_and_pipeline(self, redis):
        """redis.asyncio: commands timed to completion, a transaction as MULTI with its size."""

        async def work():
            r = client(redis, redis_asyncio.Redis)
            try:
                await r.set(SECRET_KEY, SECRET_VALUE)
                value = await r.get(SECRET_KEY)
                async with r.pipeline(transaction=True) as pipe:
                    result = await pipe.incr("visits").incr("visits").execute()
                await r.delete(SECRET_KEY, "visits")
                return value, result
            finally:
                await close(r)

        with capture() as captured:
            assert (SECRET_VALUE.encode(), [1, 2]) == asyncio.run(work())
        assert {("SET", None): 1, ("GET", None): 1, ("MULTI", None): 1, ("DEL", None): 1} == operations(captured)
        assert {"MULTI": (1, 2)} == batches(captured)
        assert_nothing_secret(captured)

    def test_error_propagates(self, redis):
        """An asyncio command that fails: the same exception, recorded with its class."""

        async def work():
            r = client(redis, redis_asyncio.Redis)
            try:
                await r.set("text", "x")
                await r.incr("text")
            finally:
                await close(r)

        with capture() as captured, pytest.raises(redis_py.ResponseError):
            asyncio.run(work())
        assert ("INCRBY", "redis.exceptions.ResponseError") in operations(captured)

