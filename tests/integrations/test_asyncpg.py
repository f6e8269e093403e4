"""asyncpg against a real PostgreSQL on 127.0.0.1: every statement of connections, pools,
transactions, prepared statements, cursors and COPY timed once under its keyword, with the
rows it returned; never SQL text or arguments; objects keep their types and results."""

from __future__ import annotations

import asyncio
import io

import pytest

import instrument.auto
from instrument.testing import capture

from ..helpers import require_module
from .db_servers import PASSWORD, operations, returned_rows

asyncpg = require_module("asyncpg")

DURATION = "db.client.operation.duration"
SECRET = "078-05-1120"


@pytest.fixture(autouse=True)
def instrumented():
    instrument.auto.install(include=["asyncpg"])
    yield
    instrument.auto.uninstall()


def run(postgres, work):
    """Run ``work(connection)`` on a fresh connection (closed after); what it returns."""

    async def main():
        connection = await asyncpg.connect(host=postgres.host, port=postgres.port, user=postgres.user,
                                           password=postgres.password, database=postgres.database)
        try:
            return await work(connection)
        finally:
            await connection.close()

    return asyncio.run(main())


def assert_nothing_secret(captured):
    for metric in (DURATION, "db.client.response.returned_rows"):
        for point in captured.find(metric):
            assert SECRET not in repr(point.tags) and PASSWORD not in repr(point.tags)


class TestConnection:
    def test_statements_with_keyword_tags_and_rows(self, postgres):
        """execute, executemany, fetch, fetchrow, fetchval: one record each under the keyword,
        tagged with the server; fetch and fetchrow record the rows they returned."""

        async def work(c):
            await c.execute("CREATE TEMP TABLE loans (id int, ssn text)")
            await c.executemany("INSERT INTO loans VALUES ($1, $2)", [(1, SECRET), (2, SECRET), (3, SECRET)])
            rows = await c.fetch("SELECT id FROM loans WHERE ssn = $1 ORDER BY id", SECRET)
            row = await c.fetchrow("SELECT id FROM loans WHERE id = $1", 2)
            total = await c.fetchval("SELECT count(*) FROM loans")
            return [r["id"] for r in rows], row["id"], total, type(c)

        with capture() as captured:
            assert ([1, 2, 3], 2, 3, asyncpg.Connection) == run(postgres, work)
        assert {("CREATE", None): 1, ("INSERT", None): 1, ("SELECT", None): 3} == operations(captured)
        assert {"SELECT": [2, 4]} == returned_rows(captured)  # fetch (3 rows) and fetchrow (1)
        assert {"db.system.name": "postgresql", "db.namespace": postgres.database, "server.address": "127.0.0.1",
                "server.port": postgres.port, "db.operation.name": "CREATE"} == captured.find(
                    DURATION, {"db.operation.name": "CREATE"})[0].tags
        assert_nothing_secret(captured)

    def test_error_propagates_with_its_class(self, postgres):
        """A failing statement: asyncpg's own exception reaches the program, its class the error.type."""

        async def work(c):
            await c.fetch("SELECT * FROM no_such_table")

        with capture() as captured, pytest.raises(asyncpg.UndefinedTableError):
            run(postgres, work)
        assert {("SELECT", "asyncpg.exceptions.UndefinedTableError"): 1} == operations(captured)

    def test_transaction_statements(self, postgres):
        """A transaction: BEGIN and COMMIT (or ROLLBACK on error) timed as the statements asyncpg runs."""

        async def work(c):
            async with c.transaction():
                await c.execute("SELECT 1")
            with pytest.raises(ZeroDivisionError):
                async with c.transaction():
                    await c.execute("SELECT 2")
                    raise ZeroDivisionError

        with capture() as captured:
            run(postgres, work)
        assert {("BEGIN", None): 2, ("SELECT", None): 2, ("COMMIT", None): 1, ("ROLLBACK", None): 1} == \
            operations(captured)

    def test_prepared_statement_and_cursors(self, postgres):
        """prepare is a round trip; a prepared statement's calls and each cursor round trip are
        timed under the statement's keyword; forward is MOVE."""

        async def work(c):
            statement = await c.prepare("SELECT g FROM generate_series(1, $1) AS g")
            fetched = await statement.fetch(5)
            async with c.transaction():
                streamed = [record["g"] async for record in c.cursor(
                    "SELECT g FROM generate_series(1, 120) AS g", prefetch=50)]
                cursor = await c.cursor("SELECT g FROM generate_series(1, 10) AS g")
                await cursor.forward(3)
                batch = await cursor.fetch(4)
            return len(fetched), len(streamed), [r["g"] for r in batch], type(statement).__name__

        with capture() as captured:
            assert (5, 120, [4, 5, 6, 7], "PreparedStatement") == run(postgres, work)
        counts = operations(captured)
        # statement.fetch 1; async for: 3 round trips of 50 (the last one short); cursor: bind 1, fetch 1
        assert (1, 1, 6) == (counts[("PREPARE", None)], counts[("MOVE", None)], counts[("SELECT", None)])
        assert 5 + 120 + 4 == returned_rows(captured)["SELECT"][1]

    def test_copy(self, postgres):
        """copy_records_to_table and copy_from_query: COPY."""

        async def work(c):
            await c.execute("CREATE TEMP TABLE t (id int)")
            await c.copy_records_to_table("t", records=[(1,), (2,)])
            out = io.BytesIO()
            await c.copy_from_query("SELECT id FROM t ORDER BY id", output=out)
            return out.getvalue()

        with capture() as captured:
            assert b"1\n2\n" == run(postgres, work)
        assert 2 == operations(captured)[("COPY", None)]


class TestPool:
    def test_pool_statements_counted_once_and_reset_untimed(self, postgres):
        """Through a pool (its connection proxies): each statement once; the pool's reset of a
        released connection is not the program's statement."""

        async def main():
            async with asyncpg.create_pool(host=postgres.host, port=postgres.port, user=postgres.user,
                                           password=postgres.password, database=postgres.database,
                                           min_size=1, max_size=2) as pool:
                values = await asyncio.gather(*(pool.fetchval("SELECT $1::int", n) for n in range(6)))
                async with pool.acquire() as connection:
                    await connection.execute("SELECT 1")
                return values

        with capture() as captured:
            assert list(range(6)) == asyncio.run(main())
        assert {("SELECT", None): 7} == operations(captured)

    def test_a_released_connections_objects_refuse_calls_when_called(self, postgres):
        """A prepared statement or cursor of a connection given back to its pool raises
        InterfaceError when its method is called, not when awaited, as asyncpg's own do (asyncpg's
        test_pool_11 found the instrumented ones raising only when awaited)."""

        async def main():
            async with asyncpg.create_pool(host=postgres.host, port=postgres.port, user=postgres.user,
                                           password=postgres.password, database=postgres.database,
                                           min_size=1, max_size=1) as pool:
                async with pool.acquire() as connection:
                    statement = await connection.prepare("SELECT 1")
                    async with connection.transaction():
                        cursor = await connection.cursor("SELECT 1")
                refused = []
                for method, call in (("PreparedStatement.fetch", statement.fetch),
                                     ("PreparedStatement.fetchval", statement.fetchval),
                                     ("PreparedStatement.explain", statement.explain),
                                     ("Cursor.forward", lambda: cursor.forward(1))):
                    with pytest.raises(asyncpg.InterfaceError, match=rf"cannot call {method}\(\).*released"):
                        call()  # never awaited: the call itself raises
                    refused.append(method)
                return refused

        with capture():
            assert 4 == len(asyncio.run(main()))


class TestTypes:
    def test_methods_keep_being_or_not_being_coroutine_functions(self):
        """What inspect says of each timed method is what it says of asyncpg's own: asyncpg's
        guarded methods (a prepared statement's, a cursor's forward) are plain functions that
        return a coroutine."""
        import inspect

        instrument.auto.uninstall()
        classes = (asyncpg.connection.Connection, asyncpg.prepared_stmt.PreparedStatement, asyncpg.cursor.Cursor,
                   asyncpg.cursor.BaseCursor)
        names = ("execute", "executemany", "fetch", "fetchval", "fetchrow", "fetchmany", "prepare", "explain",
                 "forward", "copy_from_query", "_bind", "_exec", "_bind_exec")
        plain = {(c.__name__, n): inspect.iscoroutinefunction(c.__dict__[n])
                 for c in classes for n in names if n in c.__dict__}
        instrument.auto.install(include=["asyncpg"])
        instrumented = {(c.__name__, n): inspect.iscoroutinefunction(c.__dict__[n])
                        for c in classes for n in names if n in c.__dict__}
        assert plain == instrumented
        assert not plain[("PreparedStatement", "fetch")] and plain[("Connection", "fetch")]
