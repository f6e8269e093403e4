"""PostgreSQL through psycopg2 and psycopg 3, against a real server: every statement timed
with its keyword, the connections and cursors behaving exactly like the driver's own
(factories, server-side cursors, functions that type-check in C, async), and neither
SQL text, literals nor the password ever recorded."""

from __future__ import annotations

import asyncio
import io
import ipaddress
import json
import logging
import os
import subprocess
import sys
import uuid
from decimal import Decimal
from typing import Any

import pytest

import instrument
import instrument.auto
from instrument._suppress import suppressing
from instrument.integrations import dbapi
from instrument.testing import capture

from ..helpers import FREE_THREADED, GIL_ONLY, require_module
from .db_servers import operations, returned_rows

require_module("psycopg")  # skips the module without the driver (fails in CI)

import psycopg  # noqa: E402
import psycopg.rows  # noqa: E402
import psycopg.sql  # noqa: E402
import psycopg.types.json  # noqa: E402
from psycopg.types import TypeInfo  # noqa: E402

# psycopg2 turns the GIL back on in free-threaded CPython, which does not install it
# (tests/helpers.py, GIL_ONLY): there its tests skip and psycopg 3's run.
if FREE_THREADED and "psycopg2" in GIL_ONLY:
    psycopg2: Any = None
else:
    require_module("psycopg2")
    import psycopg2
    import psycopg2.errors
    import psycopg2.extensions
    import psycopg2.extras
    import psycopg2.sql
needs_psycopg2 = pytest.mark.skipif(psycopg2 is None, reason=GIL_ONLY["psycopg2"])
DRIVERS = [d for d in ("psycopg2", "psycopg") if d != "psycopg2" or psycopg2 is not None]

METRIC = "db.client.operation.duration"
TABLE = "CREATE TEMP TABLE loans (id serial PRIMARY KEY, amount numeric, note text)"


@pytest.fixture(autouse=True, scope="module")
def integration():
    instrument.auto.install(include=DRIVERS)
    assert set(DRIVERS) <= set(instrument.auto.installed())
    yield
    instrument.auto.uninstall(DRIVERS)


@pytest.fixture
def conn2(postgres):
    """An instrumented psycopg2 connection with an empty temporary `loans` table."""
    connection = psycopg2.connect(postgres.dsn())
    connection.cursor().execute(TABLE)
    yield connection
    connection.close()


@pytest.fixture
def conn3(postgres):
    """An instrumented psycopg 3 connection with an empty temporary `loans` table."""
    connection = psycopg.connect(postgres.dsn())
    connection.execute(TABLE)
    yield connection
    connection.close()


def tags(captured, keys=("db.system.name", "db.namespace")):
    return {tuple(p.tags.get(k) for k in keys) for p in captured.find(METRIC)}


# --- psycopg2 --------------------------------------------------------------------------


@needs_psycopg2
class TestPsycopg2Metrics:
    def test_each_statement_is_timed_with_its_keyword(self, conn2):
        """execute, executemany, commit and rollback each record one call under their keyword."""
        with capture() as captured:
            cur = conn2.cursor()
            cur.execute("INSERT INTO loans (amount) VALUES (%s)", (10.5,))
            cur.executemany("INSERT INTO loans (amount) VALUES (%s)", [(1,), (2,)])
            cur.execute("  /* report */ select * from loans")
            cur.execute("WITH big AS (SELECT * FROM loans WHERE amount > 2) UPDATE loans SET note = 'x'")
            conn2.commit()
            conn2.rollback()
        assert {("INSERT", None): 2, ("SELECT", None): 1, ("UPDATE", None): 1, ("COMMIT", None): 1,
                ("ROLLBACK", None): 1} == operations(captured)
        assert {("postgresql", "ledger")} == tags(captured)

    def test_errors_propagate_unchanged_and_are_tagged(self, conn2):
        """The driver's own exception reaches the caller; the record carries its class."""
        with capture() as captured:
            with pytest.raises(psycopg2.errors.UndefinedTable) as raised:
                conn2.cursor().execute("SELECT * FROM missing")
        assert "42P01" == raised.value.pgcode
        assert {("SELECT", "psycopg2.errors.UndefinedTable"): 1} == operations(captured)

    def test_returned_rows_when_the_driver_knows_them(self, conn2):
        """A SELECT records its row count; a named cursor, which does not know it yet, records none."""
        cur = conn2.cursor()
        cur.execute("INSERT INTO loans (amount) SELECT generate_series(1, 3)")
        with capture() as captured:
            cur.execute("SELECT * FROM loans")
            named = conn2.cursor("rows")
            named.execute("SELECT * FROM loans")
            assert 3 == len(named.fetchall())
        assert {"SELECT": [1, 3]} == returned_rows(captured)
        assert {("SELECT", None): 2} == operations(captured)

    def test_with_block_is_timed_as_commit_or_rollback(self, conn2):
        """Leaving `with conn:` ends the transaction, recorded as the COMMIT or ROLLBACK it is."""
        with capture() as captured:
            with conn2:
                conn2.cursor().execute("INSERT INTO loans (amount) VALUES (1)")
            with pytest.raises(ZeroDivisionError):
                with conn2:
                    conn2.cursor().execute("INSERT INTO loans (amount) VALUES (2)")
                    1 / 0  # noqa: B018
        assert {("INSERT", None): 2, ("COMMIT", None): 1, ("ROLLBACK", None): 1} == operations(captured)

    def test_suppressed_threads_record_nothing(self, conn2, conn3):
        """Calls made where instrumentation is suppressed (the exporters' threads) are not recorded."""
        with capture() as captured:
            with suppressing():
                conn2.cursor().execute("SELECT 1")
                conn3.execute("SELECT 1")
                conn2.commit()
        assert {} == operations(captured)
        assert {} == returned_rows(captured)

    def test_composed_sql_is_read_for_its_keyword(self, conn2):
        """psycopg2.sql objects are statements like any other."""
        query = psycopg2.sql.SQL("SELECT {} FROM {}").format(psycopg2.sql.Identifier("amount"),
                                                             psycopg2.sql.Identifier("loans"))
        with capture() as captured:
            conn2.cursor().execute(query)
        assert {("SELECT", None): 1} == operations(captured)


@needs_psycopg2
class TestPsycopg2Transparency:
    def test_results_and_cursor_attributes(self, conn2):
        """fetch*, description, rowcount, lastrowid and connection are the real cursor's."""
        cur = conn2.cursor()
        assert cur.execute("INSERT INTO loans (amount) VALUES (%s), (%s)", (3, 4)) is None
        assert 2 == cur.rowcount
        assert 0 == cur.lastrowid
        cur.execute("SELECT id, amount FROM loans ORDER BY id")
        assert ["id", "amount"] == [d.name for d in cur.description]
        assert (1, Decimal(3)) == cur.fetchone()
        assert [(2, Decimal(4))] == cur.fetchmany(5)
        assert [] == cur.fetchall()
        assert cur.connection is conn2
        assert b"SELECT 'it''s'" == cur.mogrify("SELECT %s", ("it's",))

    def test_isinstance_and_hasattr_tell_the_truth(self, conn2):
        """Instrumented objects pass isinstance checks, and have no method the driver's lack."""
        cur = conn2.cursor()
        assert isinstance(conn2, psycopg2.extensions.connection)
        assert isinstance(cur, psycopg2.extensions.cursor)
        assert dbapi.instrumented(conn2)
        assert not hasattr(conn2, "execute")  # psycopg2 tells cursors from connections by it
        with pytest.raises(AttributeError, match="object has no attribute 'execute'"):
            conn2.execute("SELECT 1")
        assert hasattr(cur, "callproc")

    def test_cursor_as_context_manager_and_iterator(self, conn2):
        """`with conn.cursor() as cur` gives the cursor itself, and closes it."""
        conn2.cursor().execute("INSERT INTO loans (amount) SELECT generate_series(1, 3)")
        with capture() as captured:
            with conn2.cursor() as cur:
                cur.execute("SELECT amount FROM loans ORDER BY id")
                assert [(Decimal(1),), (Decimal(2),), (Decimal(3),)] == list(cur)
        assert cur.closed
        assert {("SELECT", None): 1} == operations(captured)

    def test_with_conn_commits_or_rolls_back(self, conn2):
        with conn2 as same:
            assert same is conn2
            conn2.cursor().execute("INSERT INTO loans (amount) VALUES (1)")
        with pytest.raises(ZeroDivisionError):
            with conn2:
                conn2.cursor().execute("INSERT INTO loans (amount) VALUES (2)")
                1 / 0  # noqa: B018
        cur = conn2.cursor()
        cur.execute("SELECT amount FROM loans")
        assert [(Decimal(1),)] == cur.fetchall()
        assert not conn2.closed  # psycopg2's `with conn:` keeps the connection open

    def test_named_server_side_cursor(self, conn2):
        """conn.cursor("name") declares a server-side cursor, fetched in batches of itersize."""
        conn2.cursor().execute("INSERT INTO loans (amount) SELECT generate_series(1, 25)")
        with capture() as captured:
            with conn2.cursor("big", scrollable=True) as cur:
                cur.itersize = 10
                cur.execute("SELECT amount FROM loans ORDER BY id")
                assert "big" == cur.name
                assert 25 == sum(1 for _ in cur)
                cur.scroll(0, mode="absolute")
                assert (Decimal(1),) == cur.fetchone()
        assert {("SELECT", None): 1} == operations(captured)

    def test_cursor_factories_at_connect_and_at_cursor(self, postgres):
        """cursor_factory= and connection_factory= give the driver's classes, instrumented."""
        conn = psycopg2.connect(postgres.dsn(), cursor_factory=psycopg2.extras.RealDictCursor)
        try:
            with capture() as captured:
                cur = conn.cursor()
                cur.execute("SELECT 1 AS a, 'x' AS b")
                assert {"a": 1, "b": "x"} == cur.fetchone()
                assert isinstance(cur, psycopg2.extras.RealDictCursor)
                named = conn.cursor(cursor_factory=psycopg2.extras.NamedTupleCursor)
                named.execute("SELECT 2 AS n")
                assert 2 == named.fetchone().n
                dict_cur = conn.cursor(cursor_factory=psycopg2.extras.DictCursor)
                dict_cur.execute("SELECT 3 AS n")
                assert 3 == dict_cur.fetchone()["n"]
            assert {("SELECT", None): 3} == operations(captured)
        finally:
            conn.close()
        logged = io.StringIO()
        conn = psycopg2.connect(postgres.dsn(), connection_factory=psycopg2.extras.LoggingConnection)
        try:
            conn.initialize(logged)
            assert isinstance(conn, psycopg2.extras.LoggingConnection)
            conn.cursor().execute("SELECT 4")
            assert "SELECT 4" in logged.getvalue()
        finally:
            conn.close()

    def test_register_functions_that_type_check_in_c(self, conn2):
        """register_type, register_uuid, register_default_json(b) accept the instrumented objects."""
        cur = conn2.cursor()
        psycopg2.extensions.register_type(psycopg2.extensions.UNICODE, conn2)
        psycopg2.extensions.register_type(psycopg2.extensions.UNICODE, cur)
        psycopg2.extras.register_uuid(conn_or_curs=conn2)
        psycopg2.extras.register_default_json(conn2, loads=lambda text: ("json", text))
        psycopg2.extras.register_default_jsonb(conn_or_curs=cur, loads=lambda text: ("jsonb", text))
        value = uuid.UUID("12345678-1234-5678-1234-567812345678")
        cur.execute("SELECT %s::uuid, '[1]'::json", (str(value),))
        assert (value, ("json", "[1]")) == cur.fetchone()
        cur.execute("SELECT '{}'::jsonb")
        assert (("jsonb", "{}"),) == cur.fetchone()

    def test_type_casters_built_from_the_database(self, conn2):
        """register_composite, register_range, register_ipaddress and register_hstore query the
        catalog through the instrumented cursor, then register on the real connection."""
        cur = conn2.cursor()
        cur.execute("CREATE TYPE card AS (number text, cvc int)")  # rolled back when the test ends
        psycopg2.extras.register_composite("card", conn2)
        cur.execute("SELECT ROW('4111', 123)::card")
        assert ("4111", 123) == tuple(cur.fetchone()[0])
        psycopg2.extras.register_range("int4range", "IntRange", conn2)
        cur.execute("SELECT int4range(1, 5)")
        found = cur.fetchone()[0]
        assert (1, 5) == (found.lower, found.upper)
        psycopg2.extras.register_ipaddress(conn2)
        cur.execute("SELECT '10.0.0.1'::inet")
        assert ipaddress.ip_interface("10.0.0.1") == cur.fetchone()[0]
        cur.execute("CREATE EXTENSION IF NOT EXISTS hstore")
        psycopg2.extras.register_hstore(cur)
        cur.execute("SELECT 'a=>1'::hstore")
        assert {"a": "1"} == cur.fetchone()[0]

    def test_quoting_and_composition(self, conn2):
        """quote_ident, encrypt_password and sql.Identifier/Literal.as_string take either proxy."""
        cur = conn2.cursor()
        assert '"we ird"' == psycopg2.extensions.quote_ident("we ird", conn2)
        assert '"x"' == psycopg2.extensions.quote_ident("x", scope=cur)
        assert psycopg2.extensions.encrypt_password("pw", "user", conn2, "md5").startswith("md5")
        query = psycopg2.sql.SQL("SELECT {} FROM {} WHERE note = {}").format(
            psycopg2.sql.Identifier("amount"), psycopg2.sql.Identifier("public", "loans"),
            psycopg2.sql.Literal("it's"))
        expected = """SELECT "amount" FROM "public"."loans" WHERE note = 'it''s'"""
        assert expected == query.as_string(conn2)
        assert expected == query.as_string(cur)

    def test_execute_values_and_execute_batch(self, conn2):
        """The fast-execution helpers run through the instrumented cursor, one record per page."""
        cur = conn2.cursor()
        with capture() as captured:
            ids = psycopg2.extras.execute_values(
                cur, "INSERT INTO loans (amount) VALUES %s RETURNING id", [(n,) for n in range(5)],
                page_size=3, fetch=True)
            psycopg2.extras.execute_batch(cur, "UPDATE loans SET note = %s WHERE id = %s", [("a", 1), ("b", 2)])
        assert [(n,) for n in range(1, 6)] == ids
        assert {("INSERT", None): 2, ("UPDATE", None): 1} == operations(captured)

    def test_copy_and_large_results(self, conn2):
        cur = conn2.cursor()
        cur.copy_from(io.StringIO("1\tone\n2\ttwo\n"), "loans", columns=("amount", "note"))
        out = io.StringIO()
        cur.copy_expert("COPY loans (amount, note) TO STDOUT", out)
        assert "1\tone\n2\ttwo\n" == out.getvalue()

    def test_not_picklable_like_the_real_connection(self, conn2):
        import pickle

        with pytest.raises(TypeError):
            pickle.dumps(conn2)
        with pytest.raises(TypeError):
            pickle.dumps(conn2.cursor())


@needs_psycopg2
class TestPsycopg2DriverTypes:
    """psycopg2's C code, which reads its connection and cursor arguments as its own types,
    accepts the instrumented ones: they are real subclasses made through its factories."""

    def test_typecaster_called_with_a_cursor(self, postgres):
        """A typecaster called with an instrumented cursor reads it in C (it crashed the
        interpreter with a proxy, so this runs in a child process)."""
        code = ("import sys, instrument.auto, psycopg2, psycopg2.extensions as ext\n"
                "instrument.auto.install(include=['psycopg2'])\n"
                "conn = psycopg2.connect(sys.argv[1])\n"
                "print(ext.UNICODE('abc', conn.cursor()), ext.UNICODE(None, conn.cursor()))\n")
        result = subprocess.run([sys.executable, "-c", code, postgres.dsn()], capture_output=True, text=True,
                                timeout=60, env={**os.environ, "INSTRUMENT_EXPORTERS": ""})
        assert (0, "abc None") == (result.returncode, result.stdout.strip()), result.stderr

    def test_error_carries_the_cursor_the_program_used(self, conn2):
        """psycopg2.Error.cursor is the very cursor whose execute raised."""
        cur = conn2.cursor()
        with pytest.raises(psycopg2.errors.UndefinedTable) as raised:
            cur.execute("SELECT * FROM missing")
        assert raised.value.cursor is cur

    def test_adapters_prepare_with_the_connection(self, conn2):
        """QuotedString, HstoreAdapter and Inet adapters take the connection in prepare()."""
        quoted = psycopg2.extensions.QuotedString("it's")
        quoted.prepare(conn2)
        assert b"'it''s'" == quoted.getquoted()
        cur = conn2.cursor()
        cur.execute("CREATE EXTENSION IF NOT EXISTS hstore")
        hstore = psycopg2.extras.HstoreAdapter({"a": "1"})
        hstore.prepare(conn2)
        assert b"hstore(ARRAY['a'], ARRAY['1'])" == hstore.getquoted()
        inet = psycopg2.extensions.adapt(psycopg2.extras.Inet("10.0.0.1"))
        inet.prepare(conn2)
        assert b"'10.0.0.1'::inet" == inet.getquoted()

    def test_driver_classes_accept_the_instrumented_connection(self, conn2):
        """extensions.cursor(conn), RealDictCursor(conn) and conn.lobject() take the connection."""
        cur = psycopg2.extensions.cursor(conn2)
        cur.execute("SELECT 1")
        assert (1,) == cur.fetchone()
        dict_cur = psycopg2.extras.RealDictCursor(conn2)
        dict_cur.execute("SELECT 2 AS n")
        assert {"n": 2} == dict_cur.fetchone()
        assert psycopg2.extensions.lobject(conn2).oid > 0

    def test_types_are_real_subclasses_named_like_the_driver_s(self, conn2, postgres):
        """type() is a subclass of the driver's class (or of the user's factory), with its name."""
        assert issubclass(type(conn2), psycopg2.extensions.connection)
        assert issubclass(type(conn2.cursor()), psycopg2.extensions.cursor)
        assert "connection" == type(conn2).__name__
        conn = psycopg2.connect(postgres.dsn(), connection_factory=psycopg2.extras.LoggingConnection)
        try:
            assert issubclass(type(conn), psycopg2.extras.LoggingConnection)
            conn.initialize(io.StringIO())
            assert isinstance(conn.cursor(), psycopg2.extras.LoggingCursor)
        finally:
            conn.close()

    def test_connect_is_psycopg2_s_own_function(self):
        """psycopg2.connect is untouched; the hook is the C function it calls, which takes the factory."""
        assert not hasattr(psycopg2.connect, "__instrument_original__")
        assert hasattr(psycopg2._connect, "__instrument_original__")

    def test_statements_of_any_cursor_of_the_connection_are_timed(self, conn2):
        """A cursor class given at cursor() or set as the connection's cursor_factory is instrumented once."""
        conn2.cursor_factory = psycopg2.extras.DictCursor
        with capture() as captured:
            conn2.cursor().execute("SELECT 1")
            conn2.cursor(cursor_factory=psycopg2.extras.NamedTupleCursor).execute("SELECT 1")
        assert psycopg2.extras.DictCursor is conn2.cursor_factory
        assert {("SELECT", None): 2} == operations(captured)


@needs_psycopg2
class TestServerTags:
    def test_server_address_and_port_are_recorded(self, conn2, conn3, postgres):
        """Both drivers tag server.address and server.port, read from libpq without a query."""
        with capture() as captured:
            conn2.cursor().execute("SELECT 1")
            conn3.execute("SELECT 1")
        assert {("127.0.0.1", postgres.port)} == tags(captured, ("server.address", "server.port"))


class TestPsycopgDriverTypes:
    def test_objects_are_psycopg_s_own_types(self, conn3, postgres):
        """psycopg 3 is pure Python: its classes are instrumented in place, so the types are its own."""
        assert type(conn3) is psycopg.Connection
        assert type(conn3.cursor()) is psycopg.Cursor
        assert type(conn3.cursor("named")) is psycopg.ServerCursor

    def test_a_subclass_calling_super_is_timed_once(self, conn3):
        """A Cursor subclass whose execute calls super() records one operation per call."""

        class AuditedCursor(psycopg.Cursor):
            def execute(self, query, params=None, **kwargs):
                self.audited = True
                return super().execute(query, params, **kwargs)

        conn3.cursor_factory = AuditedCursor
        with capture() as captured:
            cur = conn3.execute("SELECT 1")
        assert cur.audited and type(cur) is AuditedCursor
        assert {("SELECT", None): 1} == operations(captured)

    def test_cursors_built_by_hand_are_timed(self, conn3):
        """Cursor(conn) and ClientCursor(conn), made without conn.cursor(), are timed too."""
        with capture() as captured:
            psycopg.Cursor(conn3).execute("SELECT 1")
            psycopg.ClientCursor(conn3).execute("SELECT %s", (2,))
        assert {("SELECT", None): 2} == operations(captured)


# --- psycopg 3, synchronous ------------------------------------------------------------


class TestPsycopgMetrics:
    def test_each_statement_is_timed_with_its_keyword(self, conn3):
        with capture() as captured:
            conn3.execute("INSERT INTO loans (amount) VALUES (%s)", (10.5,))
            cur = conn3.cursor()
            cur.executemany("INSERT INTO loans (amount) VALUES (%s)", [(1,), (2,)])
            cur.execute("-- report\nSELECT * FROM loans")
            cur.execute(psycopg.sql.SQL("DELETE FROM {}").format(psycopg.sql.Identifier("loans")))
            conn3.commit()
            conn3.rollback()
        assert {("INSERT", None): 2, ("SELECT", None): 1, ("DELETE", None): 1, ("COMMIT", None): 1,
                ("ROLLBACK", None): 1} == operations(captured)
        assert {("postgresql", "ledger")} == tags(captured)

    def test_errors_propagate_unchanged_and_are_tagged(self, conn3):
        with capture() as captured:
            with pytest.raises(psycopg.errors.UndefinedTable) as raised:
                conn3.execute("SELECT * FROM missing")
        assert "42P01" == raised.value.sqlstate
        assert {("SELECT", "psycopg.errors.UndefinedTable"): 1} == operations(captured)

    def test_returned_rows_and_with_block(self, postgres):
        """Row counts are recorded; `with conn:` commits (timed as COMMIT) and closes."""
        with capture() as captured:
            with psycopg.connect(postgres.dsn()) as conn:
                assert 3 == len(conn.execute("SELECT generate_series(1, 3)").fetchall())
        assert conn.closed
        assert {"SELECT": [1, 3]} == returned_rows(captured)
        assert {("SELECT", None): 1, ("COMMIT", None): 1} == operations(captured)

    def test_connect_class_methods_and_subclasses(self, postgres):
        """Connections from Connection.connect and a subclass's connect are timed; the subclass stays itself."""

        class LedgerConnection(psycopg.Connection):
            marker = "ledger"

        for connect in (psycopg.connect, psycopg.Connection.connect, LedgerConnection.connect):
            conn = connect(postgres.dsn())
            try:
                with capture() as captured:
                    conn.execute("SELECT 1")
                assert {("SELECT", None): 1} == operations(captured)
            finally:
                conn.close()
        conn = LedgerConnection.connect(postgres.dsn())
        try:
            assert isinstance(conn, LedgerConnection)
            assert "ledger" == conn.marker
        finally:
            conn.close()


class TestPsycopgTransparency:
    def test_results_and_cursor_attributes(self, conn3):
        cur = conn3.cursor()
        assert cur is cur.execute("INSERT INTO loans (amount) VALUES (%s), (%s)", (3, 4))
        assert 2 == cur.rowcount
        cur.execute("SELECT id, amount FROM loans ORDER BY id")
        assert ["id", "amount"] == [d.name for d in cur.description]
        assert (1, Decimal(3)) == cur.fetchone()
        assert [(2, Decimal(4))] == cur.fetchmany(5)
        assert [] == cur.fetchall()
        assert cur.connection is conn3
        assert isinstance(cur, psycopg.Cursor)
        assert not hasattr(cur, "callproc")  # psycopg 3 has none; neither has the proxy

    def test_cursor_as_context_manager_and_iterator(self, conn3):
        conn3.execute("INSERT INTO loans (amount) SELECT generate_series(1, 3)")
        with conn3.cursor() as cur:
            assert type(cur) is psycopg.Cursor
            assert [(Decimal(1),), (Decimal(2),), (Decimal(3),)] == list(
                cur.execute("SELECT amount FROM loans ORDER BY id"))
        assert cur.closed

    def test_transaction_blocks(self, conn3):
        with conn3.transaction():
            conn3.execute("INSERT INTO loans (amount) VALUES (1)")
        with pytest.raises(ZeroDivisionError):
            with conn3.transaction():
                conn3.execute("INSERT INTO loans (amount) VALUES (2)")
                1 / 0  # noqa: B018
        assert [(Decimal(1),)] == conn3.execute("SELECT amount FROM loans").fetchall()

    def test_named_server_side_cursor(self, conn3):
        conn3.execute("INSERT INTO loans (amount) SELECT generate_series(1, 25)")
        with capture() as captured:
            with conn3.cursor(name="big", scrollable=True) as cur:
                cur.itersize = 10
                cur.execute("SELECT amount FROM loans ORDER BY id")
                assert isinstance(cur, psycopg.ServerCursor)
                assert 25 == sum(1 for _ in cur)
                cur.scroll(0, mode="absolute")
                assert (Decimal(1),) == cur.fetchone()
        assert {("SELECT", None): 1} == operations(captured)

    def test_row_and_cursor_factories(self, postgres):
        """row_factory= and cursor_factory= at connect and at cursor() keep working."""
        conn = psycopg.connect(postgres.dsn(), row_factory=psycopg.rows.dict_row, cursor_factory=psycopg.ClientCursor)
        try:
            cur = conn.cursor()
            assert isinstance(cur, psycopg.ClientCursor)
            assert {"a": 1} == cur.execute("SELECT %s AS a", (1,)).fetchone()
            assert "SELECT 'x'" == cur.mogrify("SELECT %s", ("x",))
            row = conn.cursor(row_factory=psycopg.rows.namedtuple_row).execute("SELECT 2 AS b").fetchone()
            assert 2 == row.b
        finally:
            conn.close()

    def test_cursor_subclasses(self, conn3):
        """A psycopg.Cursor subclass as the connection's factory is timed, and so is one built by hand."""

        class LedgerCursor(psycopg.Cursor):
            def first(self):
                return self.fetchone()

        conn3.cursor_factory = LedgerCursor
        with capture() as captured:
            cur = conn3.cursor()
            assert isinstance(cur, LedgerCursor)
            assert (1,) == cur.execute("SELECT 1").first()
        assert {("SELECT", None): 1} == operations(captured)
        assert (2,) == LedgerCursor(conn3).execute("SELECT 2").first()
        assert (3,) == psycopg.ClientCursor(conn3).execute("SELECT %s", (3,)).fetchone()

    def test_type_info_json_and_adapters(self, conn3):
        """TypeInfo.fetch, the JSON adapters and sql composition take the instrumented objects."""
        info = TypeInfo.fetch(conn3, "json")
        assert "json" == info.name
        info.register(conn3)
        psycopg.types.json.set_json_loads(lambda data: ("loaded", json.loads(data)), conn3)
        cur = conn3.cursor()
        assert (("loaded", {"a": 1}),) == cur.execute(
            "SELECT %s::json", [psycopg.types.json.Json({"a": 1})]).fetchone()
        assert ("loaded", {"b": 2}) == cur.execute("SELECT %s", [psycopg.types.json.Jsonb({"b": 2})]).fetchone()[0]
        assert "'it''s'" == psycopg.sql.Literal("it's").as_string(cur)
        assert '"we ird"' == psycopg.sql.Identifier("we ird").as_string(conn3)

    def test_copy(self, conn3):
        with conn3.cursor() as cur:
            with cur.copy("COPY loans (amount, note) FROM STDIN") as copy:
                copy.write_row((1, "one"))
                copy.write_row((2, "two"))
            with cur.copy("COPY loans (amount, note) TO STDOUT") as copy:
                rows = list(copy.rows())
        assert [("1", "one"), ("2", "two")] == rows


# --- psycopg 3, asynchronous -----------------------------------------------------------


class TestPsycopgAsync:
    def test_statements_are_timed_and_results_pass_through(self, postgres):
        """Awaited execute, executemany, commit and rollback are timed; `async with` and
        `async for` work on the instrumented connection and cursor."""

        async def main():
            conn = await psycopg.AsyncConnection.connect(postgres.dsn())
            assert type(conn) is psycopg.AsyncConnection
            async with conn:
                await conn.execute(TABLE)
                async with conn.cursor() as cur:
                    assert isinstance(cur, psycopg.AsyncCursor)
                    assert cur is await cur.execute("INSERT INTO loans (amount) VALUES (%s)", (1,))
                    await cur.executemany("INSERT INTO loans (amount) VALUES (%s)", [(2,), (3,)])
                    await cur.execute("SELECT amount FROM loans ORDER BY id")
                    rows = [row async for row in cur]
                await conn.commit()
                await conn.rollback()
                with pytest.raises(psycopg.errors.UndefinedTable):
                    await conn.execute("SELECT * FROM missing")
                await conn.rollback()
                cur = await conn.execute("SELECT 7")
                assert (7,) == await cur.fetchone()
            assert conn.closed
            return rows

        with capture() as captured:
            rows = asyncio.run(main())
        assert [(Decimal(1),), (Decimal(2),), (Decimal(3),)] == rows
        assert {("CREATE", None): 1, ("INSERT", None): 2, ("SELECT", None): 2, ("COMMIT", None): 2,
                ("ROLLBACK", None): 2, ("SELECT", "psycopg.errors.UndefinedTable"): 1} == operations(captured)
        assert {("postgresql", "ledger")} == tags(captured)

    def test_server_side_cursor_and_row_factory(self, postgres):
        async def main():
            async with await psycopg.AsyncConnection.connect(
                    postgres.dsn(), row_factory=psycopg.rows.dict_row) as conn:
                async with conn.cursor(name="big") as cur:
                    assert isinstance(cur, psycopg.AsyncServerCursor)
                    await cur.execute("SELECT generate_series(1, 5) AS n")
                    return [row["n"] async for row in cur]

        with capture() as captured:
            assert [1, 2, 3, 4, 5] == asyncio.run(main())
        assert {("SELECT", None): 1, ("COMMIT", None): 1} == operations(captured)


# --- never recorded, and undone -------------------------------------------------------


@needs_psycopg2
class TestNeverRecorded:
    def test_password_and_literals_never_reach_points_or_logs(self, postgres, exported, caplog):
        """Neither the password, the SQL text nor its literals appear in what is exported or logged."""
        caplog.set_level(logging.DEBUG)
        secrets = [postgres.password, "4111111111111111", "987654.5", "loans", "WHERE", "amount"]
        for driver in (psycopg2, psycopg):
            conn = driver.connect(postgres.dsn())
            try:
                cur = conn.cursor()
                cur.execute(TABLE)
                cur.execute("INSERT INTO loans (note) VALUES (%s)", ("4111111111111111",))
                cur.execute("SELECT * FROM loans WHERE amount = 987654.5")
                with pytest.raises(driver.errors.InvalidTextRepresentation, match="4111111111111111"):
                    cur.execute("SELECT * FROM loans WHERE amount = '4111111111111111x'")
            finally:
                conn.close()
        with pytest.raises(psycopg2.OperationalError):
            psycopg2.connect(postgres.dsn().replace(postgres.password, postgres.password + "-wrong"))
        instrument.flush(5.0)
        logged = [r.getMessage() for r in caplog.records if r.name.startswith("instrument")]
        text = json.dumps([p.as_dict() for b in exported.batches for p in b.points]) + json.dumps(logged)
        assert "db.client.operation.duration" in text
        for secret in secrets:
            assert secret not in text


@needs_psycopg2
class TestUninstall:
    def test_uninstall_restores_connect_and_the_classes(self, postgres):
        """Every patched function and method is put back, then installed again."""
        instrument.auto.uninstall(["psycopg2", "psycopg"])
        try:
            assert not hasattr(psycopg2._connect, "__instrument_original__")
            for cls, name in ((psycopg.Cursor, "execute"), (psycopg.ServerCursor, "execute"),
                              (psycopg.AsyncCursor, "executemany"), (psycopg.Connection, "commit")):
                assert not hasattr(vars(cls)[name], "__instrument_original__")
            conn = psycopg2.connect(postgres.dsn())
            assert type(conn) is psycopg2.extensions.connection
            conn.close()
            with capture() as captured, psycopg.connect(postgres.dsn()) as conn3:
                conn3.execute("SELECT 1")
            assert {} == operations(captured)
        finally:
            instrument.auto.install(include=["psycopg2", "psycopg"])
        conn = psycopg2.connect(postgres.dsn())
        assert dbapi.instrumented(conn)
        conn.close()


# --- end to end, under `instrument run` --------------------------------------------------

APP = """
import sys
print("started", "psycopg2" in sys.modules, flush=True)
import psycopg2, psycopg2.extras
conn = psycopg2.connect(sys.argv[1])
psycopg2.extras.register_uuid(conn_or_curs=conn)
with conn:
    with conn.cursor() as cur:
        cur.execute("CREATE TEMP TABLE t (id serial, note text)")
        cur.execute("INSERT INTO t (note) VALUES (%s)", ("4111111111111111",))
        cur.execute("SELECT * FROM t")
        print("rows", cur.fetchall(), flush=True)
conn.close()
"""


@needs_psycopg2
class TestInstrumentRun:
    def test_psycopg2_imported_after_start_up_is_instrumented(self, postgres, tmp_path):
        """`instrument run` instruments psycopg2 imported by the program, with no code change."""
        out = tmp_path / "metrics.jsonl"
        (tmp_path / "app.py").write_text(APP)
        env = {k: v for k, v in os.environ.items() if not k.startswith("INSTRUMENT_")}
        env["INSTRUMENT_JSONL_PATH"] = str(out)
        result = subprocess.run(
            [sys.executable, "-m", "instrument", "run", "--exporter", "jsonl", "--", sys.executable, "app.py",
             postgres.dsn()], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)
        assert 0 == result.returncode, result.stderr
        assert ["started False", "rows [(1, '4111111111111111')]"] == result.stdout.splitlines()
        lines = [json.loads(line) for line in out.read_text().splitlines()]
        db = [line for line in lines if line["name"] == METRIC]
        assert {"CREATE": 1, "INSERT": 1, "SELECT": 1, "COMMIT": 1} == {
            line["tags"]["db.operation.name"]: line["count"] for line in db}
        assert {("postgresql", "ledger")} == {
            (line["tags"]["db.system.name"], line["tags"]["db.namespace"]) for line in db}
        assert postgres.password not in out.read_text()
        assert "4111111111111111" not in out.read_text()
