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
        # Names, units and tags: where text goes (a number such as a timestamp could hold the digits by chance).
        text = json.dumps([(p.name, p.unit, p.tags) for p in captured.points])
        assert "db.client.operation.duration" in text
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
        assert dbapi.instrumented(conn)
        assert dbapi.instrumented(conn.cursor())
        assert dbapi.instrumented(conn.execute("SELECT 1"))

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
        """sqlite3 cursors are not context managers; neither are instrumented ones."""
        with pytest.raises(TypeError, match="does not support the context manager protocol"):
            with conn.cursor():
                pass

    def test_async_with_raises_like_the_real_one(self, conn):
        """A synchronous cursor is no asynchronous context manager, instrumented or not."""
        import asyncio

        async def enter(obj):
            async with obj:
                pass

        for obj in (conn.cursor(), sqlite3.Cursor(conn)):
            with pytest.raises(TypeError, match="object does not support the asynchronous context manager"):
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
        """backup() checks in C that its target is a sqlite3.Connection; an instrumented one is."""
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


class TestDriverTypes:
    """The objects a program gets are sqlite3's own types or real subclasses of them."""

    def test_connection_is_callable_like_the_real_one(self, conn):
        """`conn(sql)` compiles a statement, as sqlite3.Connection.__call__ does."""
        conn("SELECT 1")
        with pytest.raises(sqlite3.ProgrammingError):
            conn("SELECT 1; SELECT 2")

    def test_init_called_again_reopens_the_connection(self, conn):
        """Calling `__init__` again runs sqlite3's own initialiser, which opens the new database."""
        conn.__init__(":memory:")
        assert [] == conn.execute("SELECT name FROM sqlite_master").fetchall()
        cur = conn.cursor()
        cur.__init__(conn)
        assert (1,) == cur.execute("SELECT 1").fetchone()

    def test_driver_classes_accept_the_instrumented_connection(self, conn):
        """C functions that check for a real sqlite3.Connection accept it: Cursor(conn), backup."""
        cur = sqlite3.Cursor(conn)
        assert (2,) == cur.execute("SELECT 2").fetchone()
        target = sqlite3.connect(":memory:")
        target.backup(conn)

    def test_types_are_real_subclasses(self, conn):
        """type() is a subclass of the driver's class, named like it, so reprs do not change."""
        assert issubclass(type(conn), sqlite3.Connection)
        assert issubclass(type(conn.cursor()), sqlite3.Cursor)
        assert repr(conn).startswith("<sqlite3.Connection object at ")
        assert repr(conn.cursor()).startswith("<sqlite3.Cursor object at ")

    def test_user_factories_are_subclassed_once(self):
        """A user's Connection and Cursor classes are kept (and instrumented) by one cached subclass."""

        class MyConnection(sqlite3.Connection):
            pass

        class MyCursor(sqlite3.Cursor):
            pass

        first = sqlite3.connect(":memory:", factory=MyConnection)
        second = sqlite3.connect(":memory:", 5.0, 0, "", True, MyConnection)  # factory given by position
        assert type(first) is type(second)
        assert isinstance(first, MyConnection)
        assert type(first.cursor(MyCursor)) is type(second.cursor(factory=MyCursor))
        with capture() as captured:
            first.cursor(MyCursor).execute("SELECT 1")
            second.execute("SELECT 1")
        assert {("SELECT", None): 2} == operations(captured)

    def test_a_user_cursor_method_calling_super_is_timed_once(self):
        """A Connection subclass whose cursor() picks its own factory still gets timed cursors."""

        class MyCursor(sqlite3.Cursor):
            def execute(self, *args):
                return super().execute(*args)

        class MyConnection(sqlite3.Connection):
            def cursor(self, factory=MyCursor):
                return super().cursor(factory)

        conn = sqlite3.connect(":memory:", factory=MyConnection)
        cur = conn.cursor()
        assert isinstance(cur, MyCursor)
        with capture() as captured:
            cur.execute("SELECT 1")
        assert {("SELECT", None): 1} == operations(captured)

    def test_arguments_are_checked_by_sqlite3_itself(self, conn):
        """Bad arguments raise sqlite3's own errors, with its own messages."""
        plain = sqlite3.connect.__instrument_original__(":memory:")
        for target in (conn, plain):
            with pytest.raises(TypeError) as raised:
                target.execute()
            assert "execute expected at least 1 argument, got 0" == str(raised.value)
            with pytest.raises(TypeError, match="'NoneType' object is not callable"):
                target.cursor(None)


class TestGenericLayer:
    def test_by_hand_a_c_type_connection_is_left_as_it_is(self, caplog):
        """instrument_connect cannot change the class of a C-type connection: it returns it
        untouched and says so once (sqlite3 has its own integration for that)."""
        driver = types.SimpleNamespace(connect=sqlite3.dbapi2.connect.__instrument_original__)
        dbapi.instrument_connect(driver, "connect", db_system="customdb")
        try:
            with capture() as captured:
                for _ in range(2):
                    conn = driver.connect(":memory:")
                    conn.execute("SELECT 1")
            assert type(conn) is sqlite3.Connection
            assert {} == operations(captured)
            assert 1 == sum("C type" in r.getMessage() for r in caplog.records)
        finally:
            dbapi.uninstrument_connect(driver, "connect")
        assert driver.connect is sqlite3.dbapi2.connect.__instrument_original__

    def test_deprecated_helpers_warn_and_give_the_object_back(self, conn):
        """unwrap and unwrapping are no longer needed: they warn and return what they were given."""
        with pytest.warns(DeprecationWarning, match="no longer needed"):
            assert conn is dbapi.unwrap(conn)
        with pytest.warns(DeprecationWarning, match="no longer needed"):
            assert len is dbapi.unwrapping(len)

    def test_bad_declaration(self):
        with pytest.raises(ValueError, match="db_system must be a non-empty str"):
            dbapi.instrument_connect(types.SimpleNamespace(connect=lambda: None), db_system="")

    def test_uninstall_restores_connect(self):
        instrument.auto.uninstall(["sqlite3"])
        try:
            assert type(sqlite3.connect(":memory:")) is sqlite3.Connection
        finally:
            instrument.auto.install(include=["sqlite3"])
        assert dbapi.instrumented(sqlite3.connect(":memory:"))


class TestReviewedEdges:
    def test_cursor_is_its_own_iterator_like_the_real_one(self, conn):
        cur = conn.execute("SELECT 1")
        assert iter(cur) is cur

    def test_deep_copy_is_refused_with_type_error(self, conn):
        import copy

        with pytest.raises(TypeError, match="cannot pickle"):
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
