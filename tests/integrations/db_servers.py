"""Real PostgreSQL and MariaDB servers on 127.0.0.1 for the database integration tests,
and the small helpers those tests share.

Each is started once per test session in a throwaway data directory, with a user
that logs in with a password over TCP, and stopped (its directory removed) at the end.
A missing server binary skips the tests that need it, except under INSTRUMENT_CI=1,
where it fails them (see `tests.helpers.require_binary`): CI must never skip silently.
"""

from __future__ import annotations

import contextlib
import glob
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass

import pytest

from ..helpers import IN_CI, free_port, require_binary

USER = "ledger_app"
PASSWORD = "s3cret-Pa55word"  # tests assert this never reaches an exported point or a log
DATABASE = "ledger"
START_TIMEOUT = 60.0


@dataclass(frozen=True)
class Server:
    """Where a running server listens and how the test user logs in."""

    host: str
    port: int
    user: str
    password: str
    database: str

    def dsn(self) -> str:
        """A libpq connection string (PostgreSQL)."""
        return (f"host={self.host} port={self.port} dbname={self.database} "
                f"user={self.user} password={self.password} connect_timeout=10")




def operations(captured, metric: str = "db.client.operation.duration") -> dict[tuple[str, str | None], int]:
    """{(db.operation.name, error.type): number of calls} recorded into *metric*."""
    found: dict[tuple[str, str | None], int] = {}
    for point in captured.find(metric):
        key = (point.tags["db.operation.name"], point.tags.get("error.type"))
        found[key] = found.get(key, 0) + point.histogram.count
    return found


def returned_rows(captured) -> dict[str, list[float]]:
    """{db.operation.name: [count of calls, total rows]} of the returned-rows histogram."""
    found: dict[str, list[float]] = {}
    for point in captured.find("db.client.response.returned_rows"):
        entry = found.setdefault(point.tags["db.operation.name"], [0, 0])
        entry[0] += point.histogram.count
        entry[1] += point.histogram.sum
    return found




def _run(args: list[str], what: str, log: str | None = None) -> None:
    result = subprocess.run(args, capture_output=True, text=True, timeout=120)
    if result.returncode != 0:
        tail = ""
        if log and os.path.exists(log):
            with open(log, errors="replace") as f:
                tail = "\n--- server log ---\n" + f.read()[-3000:]
        raise RuntimeError(f"{what} failed ({result.returncode}): {' '.join(args)}\n"
                           f"{result.stdout}\n{result.stderr}{tail}")


def _scratch_dir(prefix: str, owner: str | None = None) -> str:
    """A directory under the system temporary directory (which every user can reach,
    unlike pytest's 0700 one), owned by *owner*."""
    path = tempfile.mkdtemp(prefix=prefix)
    if owner is not None:
        entry = pwd.getpwnam(owner)
        os.chown(path, entry.pw_uid, entry.pw_gid)
    return path


# --- PostgreSQL ------------------------------------------------------------------------


def postgres_binary(name: str) -> str:
    """Debian keeps the server binaries in /usr/lib/postgresql/<major>/bin, off PATH."""
    found = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"),
                   key=lambda p: int(p.split("/")[4]) if p.split("/")[4].isdigit() else 0)
    return require_binary(found[-1] if found else name)


@contextlib.contextmanager
def postgres_server(superuser: bool = False, databases: tuple[str, ...] = ()) -> Iterator[Server]:
    """initdb + pg_ctl start, through runuser when running as root (the server refuses root).

    *superuser*: the test user is a superuser (drivers' own suites create extensions and
    roles); *databases*: more databases owned by the test user.
    """
    initdb, pg_ctl, psql = (postgres_binary(name) for name in ("initdb", "pg_ctl", "psql"))
    owner = None
    as_postgres: list[str] = []
    if os.geteuid() == 0:
        as_postgres = [require_binary("runuser"), "-u", "postgres", "--"]
        owner = "postgres"
        try:
            pwd.getpwnam(owner)
        except KeyError:
            message = "system user 'postgres' does not exist (Debian's postgresql package creates it)"
            if IN_CI:
                pytest.fail(message)
            pytest.skip(message)
    root = _scratch_dir("instrument-pg-", owner)
    data, sockets, log = f"{root}/data", f"{root}/run", f"{root}/server.log"
    port = free_port()
    try:
        _run([*as_postgres, "mkdir", "-m", "0700", data, sockets], "mkdir")
        _run([*as_postgres, initdb, "-D", data, "-U", "postgres", "--auth-local=trust",
              "--auth-host=scram-sha-256", "-E", "UTF8", "--no-sync"], "initdb")
        options = f"-c listen_addresses=127.0.0.1 -p {port} -k {sockets} -c fsync=off " \
                  "-c synchronous_commit=off -c full_page_writes=off"
        _run([*as_postgres, pg_ctl, "-D", data, "-l", log, "-o", options, "-w", "-t", str(int(START_TIMEOUT)),
              "start"], "pg_ctl start", log)
        try:
            sql = (f"CREATE ROLE {USER} LOGIN {'SUPERUSER' if superuser else ''} PASSWORD '{PASSWORD}';"
                   + "".join(f"CREATE DATABASE {name} OWNER {USER};" for name in (DATABASE, *databases)))
            for statement in sql.split(";")[:-1]:
                _run([*as_postgres, psql, "-h", sockets, "-p", str(port), "-U", "postgres", "-d", "postgres",
                      "-v", "ON_ERROR_STOP=1", "-q", "-c", statement], "psql")
            yield Server("127.0.0.1", port, USER, PASSWORD, DATABASE)
        finally:
            subprocess.run([*as_postgres, pg_ctl, "-D", data, "-m", "immediate", "-w", "stop"],
                           capture_output=True, timeout=60)
    finally:
        shutil.rmtree(root, ignore_errors=True)


# --- MariaDB ---------------------------------------------------------------------------


@contextlib.contextmanager
def mariadb_server(superuser: bool = False, databases: tuple[str, ...] = ()) -> Iterator[Server]:
    """mariadb-install-db, then mariadbd in the foreground, stopped at the end.

    *superuser*: the test user has every privilege on every database; *databases*: more
    databases the test user may use.
    """
    mariadbd = require_binary("mariadbd")
    install_db = require_binary("mariadb-install-db")
    client = require_binary("mariadb")
    root = _scratch_dir("instrument-mariadb-")
    data, sock, log = f"{root}/data", f"{root}/mysqld.sock", f"{root}/server.log"
    port = free_port()
    try:
        _run([install_db, "--no-defaults", "--user=root", f"--datadir={data}",
              "--auth-root-authentication-method=normal", "--skip-test-db", "--skip-name-resolve"],
             "mariadb-install-db")
        server = subprocess.Popen(
            [mariadbd, "--no-defaults", "--user=root", f"--datadir={data}", "--bind-address=127.0.0.1",
             f"--port={port}", f"--socket={sock}", f"--pid-file={root}/mariadbd.pid", f"--log-error={log}",
             "--skip-name-resolve", "--innodb-flush-log-at-trx-commit=0", "--innodb-buffer-pool-size=32M",
             "--skip-log-bin"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            as_root = [client, "--no-defaults", f"--socket={sock}", "-u", "root"]
            deadline = time.monotonic() + START_TIMEOUT
            while subprocess.run([*as_root, "-e", "SELECT 1"], capture_output=True).returncode != 0:
                if server.poll() is not None or time.monotonic() > deadline:
                    with open(log, errors="replace") as f:
                        raise RuntimeError(f"mariadbd did not start (exit {server.poll()}):\n{f.read()[-3000:]}")
                time.sleep(0.2)
            scope = "*.*" if superuser else f"{DATABASE}.*"
            _run([*as_root, "-e",
                  "".join(f"CREATE DATABASE {name}; " for name in (DATABASE, *databases))
                  + f"CREATE USER '{USER}'@'127.0.0.1' IDENTIFIED BY '{PASSWORD}'; "
                  f"GRANT ALL ON {scope} TO '{USER}'@'127.0.0.1' {'WITH GRANT OPTION' if superuser else ''};"
                  + "".join(f"GRANT ALL ON {name}.* TO '{USER}'@'127.0.0.1'; " for name in databases)],
                 "create user", log)
            yield Server("127.0.0.1", port, USER, PASSWORD, DATABASE)
        finally:
            server.terminate()
            try:
                server.wait(60)
            except subprocess.TimeoutExpired:
                server.kill()
                server.wait(10)
    finally:
        shutil.rmtree(root, ignore_errors=True)


# --- Redis -----------------------------------------------------------------------------


@contextlib.contextmanager
def redis_server(password: str | None = PASSWORD, options: tuple[str, ...] = ()) -> Iterator[Server]:
    """redis-server in the foreground on 127.0.0.1, with no persistence, *password* (None:
    the default user needs none, as redis-py's own suite expects) and more *options*."""
    binary = require_binary("redis-server")
    root = _scratch_dir("instrument-redis-")
    port = free_port()
    login = [] if password is None else ["--requirepass", password]
    server = subprocess.Popen(
        [binary, "--bind", "127.0.0.1", "--port", str(port), "--dir", root, "--save", "", "--appendonly", "no",
         *login, *options, "--logfile", f"{root}/server.log"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + START_TIMEOUT
        while True:
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=1) as probe:
                    probe.sendall((b"" if password is None else f"AUTH {password}\r\n".encode()) + b"PING\r\n")
                    answer = b""
                    while b"PONG" not in answer and (chunk := probe.recv(100)):
                        answer += chunk
                    if b"PONG" in answer:
                        break
            except OSError:
                pass
            if server.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"redis-server did not start (exit {server.poll()})")
            time.sleep(0.05)
        yield Server("127.0.0.1", port, "default", password or "", "0")
    finally:
        server.terminate()
        server.wait(30)
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(scope="session")
def redis() -> Iterator[Server]:
    """A redis-server for the whole session (see `redis_server`)."""
    with redis_server() as server:
        yield server


@pytest.fixture(scope="session")
def postgres() -> Iterator[Server]:
    """A PostgreSQL server for the whole session (see `postgres_server`)."""
    with postgres_server() as server:
        yield server


@pytest.fixture(scope="session")
def mariadb() -> Iterator[Server]:
    """A MariaDB server for the whole session (see `mariadb_server`)."""
    with mariadb_server() as server:
        yield server
