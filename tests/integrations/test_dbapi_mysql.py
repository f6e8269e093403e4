"""MySQL (MariaDB) through PyMySQL, against a real server: every statement timed with its
keyword, the connection and cursors behaving exactly like the driver's own (cursor
classes, unbuffered cursors, stored procedures), and neither SQL text, literals nor the
password ever recorded."""

from __future__ import annotations

import json
import logging
import types

import pytest

import instrument
import instrument.auto
from instrument.integrations import dbapi
from instrument.testing import capture

from ..helpers import require_module
from .db_servers import operations, returned_rows

require_module("pymysql")  # skips the module without the driver (fails in CI)

import pymysql  # noqa: E402
import pymysql.cursors  # noqa: E402

METRIC = "db.client.operation.duration"
TABLE = "CREATE TEMPORARY TABLE loans (id INT AUTO_INCREMENT PRIMARY KEY, amount DECIMAL(12, 2), note TEXT)"


@pytest.fixture(autouse=True, scope="module")
def integration():
    instrument.auto.install(include=["pymysql"])
    assert "pymysql" in instrument.auto.installed()
    yield
    instrument.auto.uninstall(["pymysql"])


def connect(server, **kwargs):
    return pymysql.connect(host=server.host, port=server.port, user=server.user, password=server.password,
                           database=server.database, **kwargs)


@pytest.fixture
def conn(mariadb):
    """An instrumented PyMySQL connection with an empty temporary `loans` table."""
    connection = connect(mariadb)
    connection.cursor().execute(TABLE)
    yield connection
    connection.close()


class TestMetrics:
    def test_each_statement_is_timed_with_its_keyword(self, conn):
        """execute, executemany, callproc, commit and rollback each record one call."""
        with capture() as captured:
            cur = conn.cursor()
            cur.execute("INSERT INTO loans (amount) VALUES (%s)", (10.5,))
            cur.executemany("INSERT INTO loans (amount) VALUES (%s)", [(1,), (2,)])
            cur.execute("/* report */ SELECT * FROM loans")
            cur.execute("# nightly report\n-- by the batch job\nSELECT count(*) FROM loans")
            cur.execute("WITH big AS (SELECT id FROM loans WHERE amount > 2) SELECT count(*) FROM big")
            cur.execute("DO 1")  # a statement keyword we do not know
            conn.commit()
            conn.rollback()
        assert {
            ("INSERT", None): 2, ("SELECT", None): 3, ("OTHER", None): 1, ("COMMIT", None): 1, ("ROLLBACK", None): 1
        } == operations(captured)
        assert {("mysql", "ledger")} == {
            (p.tags["db.system.name"], p.tags["db.namespace"]) for p in captured.find(METRIC)}

    def test_callproc_is_timed_as_call(self, conn):
        cur = conn.cursor()
        cur.execute("CREATE PROCEDURE IF NOT EXISTS double_it(IN x INT) SELECT x * 2 AS doubled")
        with capture() as captured:
            assert (21,) == cur.callproc("double_it", (21,))
            assert ((42,),) == cur.fetchall()
        assert {("CALL", None): 1} == operations(captured)

    def test_errors_propagate_unchanged_and_are_tagged(self, conn):
        with capture() as captured:
            with pytest.raises(pymysql.err.ProgrammingError) as raised:
                conn.cursor().execute("SELECT * FROM missing")
            with pytest.raises(pymysql.err.IntegrityError):
                conn.cursor().execute("INSERT INTO loans (id) VALUES (1), (1)")
        assert 1146 == raised.value.args[0]
        assert {("SELECT", "pymysql.err.ProgrammingError"): 1, ("INSERT", "pymysql.err.IntegrityError"): 1} == \
            operations(captured)

    def test_returned_rows_when_the_driver_knows_them(self, conn):
        """A buffered SELECT records its row count; an unbuffered one (count unknown) records none."""
        conn.cursor().execute("INSERT INTO loans (amount) VALUES (1), (2), (3)")
        with capture() as captured:
            conn.cursor().execute("SELECT * FROM loans")
            unbuffered = conn.cursor(pymysql.cursors.SSCursor)
            unbuffered.execute("SELECT * FROM loans")
            assert 3 == len(unbuffered.fetchall())
        assert {"SELECT": [1, 3]} == returned_rows(captured)

    def test_with_conn_closes_and_is_not_a_transaction(self, mariadb):
        """PyMySQL's `with conn:` closes the connection without committing: nothing is timed."""
        with capture() as captured:
            with connect(mariadb) as conn:
                pass
        assert not conn.open
        assert {} == operations(captured)


class TestTransparency:
    def test_results_and_cursor_attributes(self, conn):
        cur = conn.cursor()
        assert 2 == cur.execute("INSERT INTO loans (amount) VALUES (%s), (%s)", (3, 4))
        assert 1 == cur.lastrowid
        assert 2 == cur.rowcount
        assert 2 == cur.execute("SELECT id, amount FROM loans ORDER BY id")
        assert ("id", "amount") == tuple(d[0] for d in cur.description)
        assert 1 == cur.fetchone()[0]
        assert [2] == [row[0] for row in cur.fetchmany(5)]
        assert () == cur.fetchall()
        assert cur.connection is conn
        assert "SELECT 'it\\'s'" == cur.mogrify("SELECT %s", ("it's",))

    def test_isinstance_and_the_untouched_class(self, mariadb, conn):
        """pymysql.connections.Connection stays the class, and the pymysql.Connect alias is timed too."""
        assert isinstance(conn, pymysql.connections.Connection)
        assert isinstance(pymysql.connections.Connection, type)
        assert not hasattr(conn, "execute")
        with pymysql.Connect(host=mariadb.host, port=mariadb.port, user=mariadb.user,
                             password=mariadb.password) as alias, capture() as captured:
            alias.cursor().execute("SELECT 1")
        assert {("SELECT", None): 1} == operations(captured)

    def test_cursor_as_context_manager_and_iterator(self, conn):
        conn.cursor().execute("INSERT INTO loans (amount) VALUES (1), (2), (3)")
        with capture() as captured:
            with conn.cursor() as cur:
                cur.execute("SELECT id FROM loans ORDER BY id")
                assert [(1,), (2,), (3,)] == list(cur)
        assert cur.connection is None  # PyMySQL's closed cursor forgets its connection
        assert {("SELECT", None): 1} == operations(captured)

    def test_cursor_classes_at_connect_and_at_cursor(self, mariadb, conn):
        """cursorclass= at connect and a class given to cursor() give the driver's cursors."""
        with connect(mariadb, cursorclass=pymysql.cursors.DictCursor) as dict_conn:
            cur = dict_conn.cursor()
            assert isinstance(cur, pymysql.cursors.DictCursor)
            cur.execute("SELECT 1 AS a, 'x' AS b")
            assert {"a": 1, "b": "x"} == cur.fetchone()
        conn.cursor().execute("INSERT INTO loans (amount) VALUES (1), (2)")
        with capture() as captured:
            streaming = conn.cursor(pymysql.cursors.SSDictCursor)
            assert isinstance(streaming, pymysql.cursors.SSDictCursor)
            streaming.execute("SELECT id FROM loans ORDER BY id")
            assert [{"id": 1}, {"id": 2}] == list(streaming)
            streaming.close()
        assert {("SELECT", None): 1} == operations(captured)

    def test_connection_helpers_pass_through(self, conn):
        assert "'it\\'s'" == conn.escape("it's")
        assert conn.open
        conn.ping()
        conn.select_db("ledger")
        conn.autocommit(True)
        assert conn.get_autocommit()


class TestDriverTypes:
    def test_objects_are_pymysql_s_own_types(self, conn):
        """PyMySQL is pure Python: its classes are instrumented in place, so the types are its own."""
        assert type(conn) is pymysql.connections.Connection
        assert type(conn.cursor()) is pymysql.cursors.Cursor
        assert pymysql.connect is pymysql.connections.Connection

    def test_connections_made_from_the_class_are_timed(self, mariadb):
        """pymysql.connections.Connection(...) is instrumented like pymysql.connect(...)."""
        conn = pymysql.connections.Connection(host=mariadb.host, port=mariadb.port, user=mariadb.user,
                                              password=mariadb.password, database=mariadb.database)
        try:
            with capture() as captured:
                conn.cursor().execute("SELECT 1")
            assert {("SELECT", None): 1} == operations(captured)
        finally:
            conn.close()

    def test_server_address_and_port_are_recorded(self, conn, mariadb):
        with capture() as captured:
            conn.cursor().execute("SELECT 1")
        assert {("127.0.0.1", mariadb.port)} == {
            (p.tags["server.address"], p.tags["server.port"]) for p in captured.find(METRIC)}


class TestNeverRecorded:
    def test_password_and_literals_never_reach_points_or_logs(self, mariadb, exported, caplog):
        """Neither the password, the SQL text nor its literals appear in what is exported or logged."""
        caplog.set_level(logging.DEBUG)
        conn = connect(mariadb)
        try:
            cur = conn.cursor()
            cur.execute(TABLE)
            cur.execute("INSERT INTO loans (note) VALUES (%s)", ("4111111111111111",))
            cur.execute("SELECT * FROM loans WHERE amount = 987654.5")
            with pytest.raises(pymysql.err.ProgrammingError, match="4111111111111111"):
                cur.execute("SELECT * FROM loans WHERE note = = '4111111111111111'")
        finally:
            conn.close()
        with pytest.raises(pymysql.err.OperationalError):
            pymysql.connect(host=mariadb.host, port=mariadb.port, user=mariadb.user,
                            password=mariadb.password + "-wrong", database=mariadb.database)
        instrument.flush(5.0)
        logged = [r.getMessage() for r in caplog.records if r.name.startswith("instrument")]
        text = json.dumps([p.as_dict() for b in exported.batches for p in b.points]) + json.dumps(logged)
        assert "db.client.operation.duration" in text
        for secret in (mariadb.password, "4111111111111111", "987654.5", "loans", "WHERE", "amount"):
            assert secret not in text


class TestUninstall:
    def test_uninstall_restores_connect(self, mariadb):
        instrument.auto.uninstall(["pymysql"])
        try:
            assert pymysql.connect is pymysql.connections.Connection
            assert pymysql.Connect is pymysql.connections.Connection
            assert not hasattr(pymysql.cursors.Cursor.execute, "__instrument_original__")
            conn = connect(mariadb)
            with capture() as captured:
                conn.cursor().execute("SELECT 1")
            assert {} == operations(captured)
            conn.close()
        finally:
            instrument.auto.install(include=["pymysql"])
        conn = connect(mariadb)
        with capture() as captured:
            conn.cursor().execute("SELECT 1")
        assert {("SELECT", None): 1} == operations(captured)
        conn.close()

    def test_instrument_connect_by_hand(self, mariadb):
        """instrument_connect times a Python driver's connections, by a subclass of its own
        classes, and can be undone."""
        instrument.auto.uninstall(["pymysql"])
        driver = types.SimpleNamespace(connect=pymysql.connections.Connection)
        try:
            dbapi.instrument_connect(driver, "connect", db_system="customdb",
                                     namespace=lambda args, kwargs, conn: kwargs.get("database"))
            dbapi.instrument_connect(driver, "connect", db_system="customdb")  # idempotent
            conn = driver.connect(host=mariadb.host, port=mariadb.port, user=mariadb.user,
                                  password=mariadb.password, database=mariadb.database)
            with capture() as captured:
                cur = conn.cursor(pymysql.cursors.DictCursor)
                cur.execute("SELECT 1 AS one")
                assert {"one": 1} == cur.fetchone()
                cur.executemany("SELECT %s", [(1,), (2,)])
                conn.commit()
            assert isinstance(conn, pymysql.connections.Connection)
            assert isinstance(cur, pymysql.cursors.DictCursor)
            assert dbapi.instrumented(conn) and dbapi.instrumented(cur)
            assert {("SELECT", None): 2, ("COMMIT", None): 1} == operations(captured)
            assert {("customdb", "ledger")} == {
                (p.tags["db.system.name"], p.tags["db.namespace"]) for p in captured.find(METRIC)}
            conn.close()
            dbapi.uninstrument_connect(driver, "connect")
            assert driver.connect is pymysql.connections.Connection
        finally:
            instrument.auto.install(include=["pymysql"])
