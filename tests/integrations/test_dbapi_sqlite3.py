"""DB-API instrumentation through sqlite3: every statement timed, the connection and cursor
behaving exactly like the driver's own, and no SQL beyond its keyword ever recorded."""

from __future__ import annotations

import json
import pickle
import sqlite3
import types

import pytest

import instrument.auto
from instrument.integrations import dbapi
from instrument.testing import capture

METRIC = "db.client.operation.duration"


@pytest.fixture(autouse=True, scope="module")
def integration():
    instrument.auto.install(include=["sqlite3"])
    assert "sqlite3" in instrument.auto.installed()
    yield
    instrument.auto.uninstall(["sqlite3"])


@pytest.fixture
def conn():
    connection = sqlite3.connect(":memory:")
    connection.execute("CREATE TABLE loans (id INTEGER PRIMARY KEY, amount REAL)")
    yield connection
    connection.close()


def operations(captured):
    """{(operation, error): count} of the DB metric."""
    found = {}
    for point in captured.find(METRIC):
        key = (point.tags["db.operation.name"], point.tags.get("error.type"))
        found[key] = found.get(key, 0) + point.histogram.count
    return found


class TestMetrics:
    def test_each_statement_is_timed_with_its_keyword(self, conn):
        with capture() as captured:
            cur = conn.cursor()
            cur.execute("INSERT INTO loans (amount) VALUES (?)", (10.5,))
            cur.executemany("INSERT INTO loans (amount) VALUES (?)", [(1,), (2,)])
            cur.execute("  /* report */ select * from loans")
            conn.execute("UPDATE loans SET amount = amount + 1")
            conn.commit()
            conn.rollback()
        assert {("INSERT", None): 2, ("SELECT", None): 1, ("UPDATE", None): 1,
                ("COMMIT", None): 1, ("ROLLBACK", None): 1} == operations(captured)
        point = captured.find(METRIC)[0]
        assert {"db.system.name": "sqlite", "db.namespace": ":memory:"} == {
            k: point.tags[k] for k in ("db.system.name", "db.namespace")}

    def test_errors_propagate_unchanged_and_are_tagged(self, conn):
        with capture() as captured:
            with pytest.raises(sqlite3.OperationalError, match="no such table: missing"):
                conn.execute("SELECT * FROM missing")
            cur = conn.cursor()
            with pytest.raises(sqlite3.IntegrityError):
                cur.execute("INSERT INTO loans (id, amount) VALUES (1, 1), (1, 2)")
        assert {("SELECT", "sqlite3.OperationalError"): 1, ("INSERT", "sqlite3.IntegrityError"): 1} == \
            operations(captured)

    def test_sql_text_parameters_and_literals_are_never_recorded(self, conn):
        with capture() as captured:
            conn.execute("INSERT INTO loans (amount) VALUES (?)", (4111.11,))
            conn.execute("SELECT * FROM loans WHERE amount = 987654.5")
        text = json.dumps([p.as_dict() for p in captured.points])
        for secret in ("loans", "4111", "987654", "amount", "WHERE"):
            assert secret not in text

    def test_file_database_namespace_is_its_name(self, tmp_path):
        path = tmp_path / "ledger.db"
        with capture() as captured:
            sqlite3.connect(str(path)).execute("SELECT 1")
            sqlite3.connect(f"file:{path}?mode=ro", uri=True).execute("SELECT 1")
        assert {"ledger.db"} == {p.tags["db.namespace"] for p in captured.find(METRIC)}


class TestTransparency:
    def test_results_and_cursor_attributes(self, conn):
        cur = conn.cursor()
        assert cur is cur.execute("INSERT INTO loans (amount) VALUES (?)", (3.0,))
        assert 1 == cur.lastrowid
        assert 1 == cur.rowcount
        cur.execute("SELECT id, amount FROM loans")
        assert ("id", "amount") == tuple(d[0] for d in cur.description)
        assert (1, 3.0) == cur.fetchone()
        assert [] == cur.fetchall()
        assert [(1, 3.0)] == list(conn.execute("SELECT * FROM loans"))
        assert (1, 3.0) == next(conn.execute("SELECT * FROM loans"))
        assert cur.connection is conn

    def test_isinstance_and_type_checks(self, conn):
        assert isinstance(conn, sqlite3.Connection)
        assert isinstance(conn.cursor(), sqlite3.Cursor)
        assert dbapi.unwrap(conn) is not conn

    def test_with_block_commits_or_rolls_back(self, conn):
        with conn as same:
            assert same is conn
            conn.execute("INSERT INTO loans (amount) VALUES (1)")
        with pytest.raises(ZeroDivisionError):
            with conn:
                conn.execute("INSERT INTO loans (amount) VALUES (2)")
                1 / 0  # noqa: B018
        assert [(1.0,)] == conn.execute("SELECT amount FROM loans").fetchall()

    def test_cursor_without_context_manager_raises_like_the_real_one(self, conn):
        """sqlite3 cursors are not context managers; neither is the proxy, with the same error."""
        with pytest.raises(TypeError, match="does not support the context manager protocol"):
            with conn.cursor():
                pass

    def test_async_with_raises_like_the_real_one(self, conn):
        """A synchronous cursor is no asynchronous context manager, proxied or not."""
        import asyncio

        async def enter(obj):
            async with obj:
                pass

        for obj in (conn.cursor(), dbapi.unwrap(conn.cursor())):
            with pytest.raises(TypeError, match="'sqlite3.Cursor' object does not support the asynchronous"):
                asyncio.run(enter(obj))

    def test_row_factory_and_custom_factories(self, tmp_path):
        class MyConnection(sqlite3.Connection):
            marker = "mine"

        class MyCursor(sqlite3.Cursor):
            def first(self):
                return self.fetchone()

        conn = sqlite3.connect(":memory:", factory=MyConnection)
        assert "mine" == conn.marker
        conn.row_factory = sqlite3.Row
        row = conn.execute("SELECT 1 AS a, 'x' AS b").fetchone()
        assert {"a": 1, "b": "x"} == dict(row)
        cur = conn.cursor(factory=MyCursor)
        with capture() as captured:
            assert 7 == cur.execute("SELECT 7 AS n").first()["n"]
        assert {("SELECT", None): 1} == operations(captured)

    def test_functions_that_type_check_their_argument(self, conn):
        """backup() needs the real target connection; the proxy passes it through."""
        conn.execute("INSERT INTO loans (amount) VALUES (5)")
        conn.commit()  # sqlite3 waits for open write transactions before a backup
        target = sqlite3.connect(":memory:")
        conn.backup(target)
        assert [(1, 5.0)] == target.execute("SELECT * FROM loans").fetchall()

    def test_create_function_and_executescript(self, conn):
        conn.create_function("double", 1, lambda x: 2 * x)
        assert (6,) == conn.execute("SELECT double(3)").fetchone()
        conn.executescript("INSERT INTO loans (amount) VALUES (1); INSERT INTO loans (amount) VALUES (2);")
        assert (2,) == conn.execute("SELECT count(*) FROM loans").fetchone()

    def test_not_picklable_like_the_real_connection(self, conn):
        with pytest.raises(TypeError):
            pickle.dumps(conn)


class TestGenericLayer:
    def test_instrument_any_driver_by_hand(self):
        """instrument_connect works on any module-level connect function and can be undone."""
        driver = types.SimpleNamespace(connect=sqlite3.dbapi2.connect.__instrument_original__)
        dbapi.instrument_connect(driver, "connect", db_system="customdb")
        dbapi.instrument_connect(driver, "connect", db_system="customdb")  # idempotent
        with capture() as captured:
            driver.connect(":memory:").execute("SELECT 1")
        assert ["customdb"] == [p.tags["db.system.name"] for p in captured.find(METRIC)]
        dbapi.uninstrument_connect(driver, "connect")
        assert not isinstance(driver.connect(":memory:"), dbapi.ConnectionProxy)

    def test_bad_declaration(self):
        with pytest.raises(ValueError, match="db_system must be a non-empty str"):
            dbapi.instrument_connect(types.SimpleNamespace(connect=lambda: None), db_system="")

    def test_uninstall_restores_connect(self):
        instrument.auto.uninstall(["sqlite3"])
        try:
            assert not isinstance(sqlite3.connect(":memory:"), dbapi.ConnectionProxy)
        finally:
            instrument.auto.install(include=["sqlite3"])
        assert isinstance(sqlite3.connect(":memory:"), dbapi.ConnectionProxy)


class TestReviewedEdges:
    def test_cursor_is_its_own_iterator_like_the_real_one(self, conn):
        cur = conn.execute("SELECT 1")
        assert iter(cur) is cur

    def test_deep_copy_is_refused_with_type_error(self, conn):
        import copy

        with pytest.raises(TypeError, match="cannot be copied"):
            copy.deepcopy(conn)

    def test_long_statements_are_not_kept_in_the_keyword_cache(self, conn):
        """Only short statement texts are cached: literals of large statements are not kept alive."""
        from instrument.integrations import _sql

        statement = "SELECT '" + "secret" * 500 + "'"
        conn.execute(statement)
        assert statement not in _sql._cache
        assert "SELECT" == _sql.operation(statement)

    def test_a_statement_object_that_breaks_attribute_access(self, conn):
        """An exotic statement object reaches the driver, which raises its own error."""

        class Weird:
            def __getattr__(self, name):
                raise RuntimeError("no attributes here")

        with pytest.raises(TypeError):
            conn.execute(Weird())
