"""The database drivers' (and aiohttp's) own test suites, run twice: plain and under ``instrument run``.

    python tests/transparency/run.py [--suite NAME ...] [--cache DIR]

Each suite runs once as it is and once under ``instrument run --exporter jsonl``, against
real servers this script starts on 127.0.0.1 (see tests/integrations/db_servers.py).
The run fails when any test's outcome differs between the two runs (and again in a
second pair of runs, which is made only when the first pair differs: some suites have
load-dependent tests), when a run crashes, or when the instrumented run recorded none of
what the suite expects (``Suite.expects``: ``db.client.operation.duration`` points of the
suite's database system; aiohttp's client and server requests and websocket sessions), since
the instrumentation would not have been exercised. The only differences accepted are those
listed, with the reason, in docs/databases.md: under "Tests that assert exact type identity"
(passed plain, failed instrumented) and "Tests whose outcome depends on timing" (any two
outcomes).

Suites and where their tests come from (obtained at run time into --cache, never
committed; CI reaches PyPI and Debian's package archive, not the projects' repositories):

- ``sqlite3``: CPython's ``test.test_sqlite3``, which ships with the interpreter.
- ``psycopg2``: the ``tests/`` of psycopg2's sdist on PyPI, for the installed version,
  on PostgreSQL.
- ``pymysql``: ``pymysql/tests`` of PyMySQL's source, on MariaDB, and
- ``psycopg``: psycopg 3's ``tests/``, on PostgreSQL. PyPI's sdists and wheels of these
  two lack their tests: they come from the upstream tarball (``.orig.tar.*``) of Debian's
  source package of the installed version (``python-pymysql``, ``psycopg3``), found
  through apt's source lists (``apt-cache showsrc``, ``apt-get source --print-uris``:
  .ci/run adds the ``deb-src`` entry) and checked against the SHA-256 that apt's
  signed index gives. tox.ini pins the two drivers to the versions Debian packages.
  A directory ``<cache>/<project>-<version>`` holding the project's tree (unpacked there
  from the Debian tarball on an earlier run, or by hand from a repository snapshot of
  that version) is used as it is.
- ``asyncpg``: the ``tests/`` of asyncpg's sdist on PyPI, for the installed version, all of
  them, on PostgreSQL through ``PGHOST`` and the other libpq variables (asyncpg's harness
  cannot start a cluster of its own as root: the tests that need one skip themselves).
- ``redis``: the ``tests/`` of redis-py's sdist, on Redis, a subset (`REDIS_TESTS`: the files
  that go through what the integration wraps, sync and asyncio).
- ``aiohttp``: the ``tests/`` of aiohttp's sdist, its functional tests (`AIOHTTP_TESTS`: a real
  client and server, both instrumented, websocket sessions measured; its whole suite takes
  6 minutes a run on the 2-core machine).
  These three run from the run's own directory with ``tests`` linked to the sdist's, so that
  the installed library is imported, not the sdist's source. docs/databases.md says why each
  subset is what it is and what fails or skips in both runs.

A suite whose tests cannot be obtained is reported as NOT RUN, with what to run to
obtain them; under INSTRUMENT_CI=1 that fails the run, except for a suite whose source
CI is known not to reach (``Suite.promised``: see docs/databases.md). Every other
problem fails the run.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
import urllib.error
import urllib.request
import xml.etree.ElementTree as ET
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from importlib.metadata import version
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from tests.integrations.db_servers import Server, mariadb_server, postgres_server, redis_server  # noqa: E402

HERE = Path(__file__).resolve().parent
UNITTEST = str(HERE / "unittest_outcomes.py")
DOCS = ROOT / "docs" / "databases.md"
METRIC = "db.client.operation.duration"
# A metric, and tags its points must have: the instrumented run of a suite must record some.
Expected = tuple[str, tuple[tuple[str, str], ...]]


def db(system: str) -> tuple[Expected, ...]:
    """What a database driver's suite must record: ``db.client.operation.duration`` points
    of its database system."""
    return ((METRIC, (("db.system.name", system),)),)
TIMEOUT = 900  # seconds for one run of one suite


class Unavailable(Exception):
    """The suite's tests cannot be obtained here: reported as NOT RUN (a failure under
    INSTRUMENT_CI=1 for a suite CI promises to run)."""


@dataclass
class Prepared:
    """How to run one suite: from *cwd*, ``python`` + *argv* (where ``{out}`` is the
    file the outcomes land in: JSON, or pytest's junit XML if *junit*), with *env* added."""

    cwd: Path
    argv: list[str]
    env: dict[str, str] = field(default_factory=dict)
    junit: bool = False
    origin: str = ""  # where the tests came from, for the report


@dataclass
class Servers:
    postgres: Server | None = None
    mariadb: Server | None = None
    redis: Server | None = None


@dataclass
class Suite:
    name: str
    expects: tuple[Expected, ...]  # what its instrumented run must record (see `db`)
    needs: str | None  # "postgres", "mariadb", "redis" or None
    prepare: Callable[[Path, Path, Servers], Prepared]  # (cache, run directory, servers)
    # Under INSTRUMENT_CI=1, tests that cannot be obtained fail the run: CI promises to run
    # the suite. False only for a suite whose source CI's network is known not to serve.
    promised: bool = True


# --- obtaining the suites -----------------------------------------------------------------


def _sdist(cache: Path, distribution: str, release: str) -> Path:
    """The unpacked sdist of *distribution* *release*, downloaded from PyPI once."""
    target = cache / f"{distribution}-{release}"
    if target.is_dir():
        return target
    download = cache / "download"
    download.mkdir(parents=True, exist_ok=True)
    try:
        subprocess.run([sys.executable, "-m", "pip", "download", "--quiet", "--no-binary", ":all:", "--no-deps",
                        "--dest", str(download), f"{distribution}=={release}"], check=True, timeout=300)
    except (subprocess.CalledProcessError, subprocess.TimeoutExpired) as exc:
        raise Unavailable(f"pip could not download the sdist of {distribution} {release}: {exc}") from None
    archive = next(p for p in download.iterdir() if p.name.lower().startswith(f"{distribution.lower()}-{release}")
                   and p.name.endswith(".tar.gz"))
    _unpack(archive, target)
    return target


def _unpack(archive: Path, target: Path) -> None:
    """Unpack *archive* as *target*: its one top directory, or all of it if it has several."""
    with tempfile.TemporaryDirectory(dir=target.parent) as scratch, tarfile.open(archive) as tar:
        tar.extractall(Path(scratch) / "tree", filter="data")
        tops = list((Path(scratch) / "tree").iterdir())
        (tops[0] if len(tops) == 1 and tops[0].is_dir() else Path(scratch) / "tree").rename(target)


# What to run, as root, for apt to know Debian's source packages (.ci/run does it).
DEB_SRC_HINT = ("as root: add a deb-src entry for Debian 13 (trixie) as .ci/run does (a copy of "
                "/etc/apt/sources.list.d/debian.sources with `Types: deb-src` and trixie's suites), "
                "then `apt-get update`")


def debian_upstream(debian_version: str) -> str:
    """The upstream version in a Debian package version: ``1:3.2.6+ds-1~bpo12+1`` -> ``3.2.6``
    (epoch, Debian revision and repacking suffix removed)."""
    upstream = debian_version.split(":", 1)[-1]
    if "-" in upstream:
        upstream = upstream.rsplit("-", 1)[0]
    return re.split(r"[+~](?:dfsg|ds|repack)", upstream)[0]


def debian_versions(showsrc: str) -> list[str]:
    """The ``Version:`` of each source package stanza in ``apt-cache showsrc`` output."""
    return re.findall(r"^Version:\s*(\S+)\s*$", showsrc, flags=re.MULTILINE)


@dataclass(frozen=True)
class DebianFile:
    url: str
    name: str
    size: int
    sha256: str


def debian_orig(print_uris: str) -> DebianFile | None:
    """The upstream tarball among the files ``apt-get source --print-uris`` lists."""
    for match in re.finditer(r"^'([^']+)' (\S+) (\d+) SHA256:([0-9a-f]{64})\s*$", print_uris, flags=re.MULTILINE):
        if ".orig.tar." in match.group(2):
            return DebianFile(match.group(1), match.group(2), int(match.group(3)), match.group(4))
    return None


def _apt(*argv: str) -> str:
    try:
        result = subprocess.run(list(argv), capture_output=True, text=True, timeout=120, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise Unavailable(f"`{' '.join(argv)}` could not run: {exc}; {DEB_SRC_HINT}") from None
    return result.stdout if result.returncode == 0 else ""


def _debian_source(cache: Path, package: str, project: str, release: str) -> tuple[Path, str]:
    """(``cache/<project>-<release>``, where it came from): the project's source tree as
    released upstream, from the upstream tarball of Debian's source package *package* whose
    upstream version is *release* (the installed one). Debian's own patches are not applied:
    the suite is the project's. A directory already there is used as it is."""
    target = cache / f"{project}-{release}"
    origin_file = cache / f"{project}-{release}.origin"
    if target.is_dir():
        origin = origin_file.read_text().strip() if origin_file.exists() else "unpacked there by hand"
        return target, f"{origin} (cached in {target})"
    try:
        origin = _debian_orig_unpacked(cache, package, project, release, target)
    except Unavailable as exc:
        raise Unavailable(f"{exc} (or unpack {project}'s source tree at {release} as {target})") from None
    origin_file.write_text(origin + "\n")
    return target, origin


def _debian_orig_unpacked(cache: Path, package: str, project: str, release: str, target: Path) -> str:
    if shutil.which("apt-cache") is None or shutil.which("apt-get") is None:
        raise Unavailable(f"{project}'s tests are not on PyPI, and this machine has no apt to get Debian's "
                          f"source package {package}")
    versions = debian_versions(_apt("apt-cache", "showsrc", package))
    if not versions:
        raise Unavailable(f"{project}'s tests are not on PyPI, and apt knows no source package {package}: "
                          f"{DEB_SRC_HINT}")
    matching = [v for v in versions if debian_upstream(v) == release]
    if not matching:
        raise Unavailable(f"Debian's source package {package} is at {', '.join(versions)}, but {project} {release} "
                          "is installed: pin the version Debian has in tox.ini's [testenv:transparency]")
    debian_version = matching[0]
    orig = debian_orig(_apt("apt-get", "source", "--print-uris", f"{package}={debian_version}"))
    if orig is None:
        raise Unavailable(f"`apt-get source --print-uris {package}={debian_version}` lists no upstream tarball")
    try:
        with urllib.request.urlopen(orig.url, timeout=120) as response:
            data = response.read()
    except (urllib.error.URLError, OSError) as exc:
        raise Unavailable(f"{orig.url}: {exc}") from None
    if len(data) != orig.size or hashlib.sha256(data).hexdigest() != orig.sha256:
        raise Unavailable(f"{orig.url}: {len(data)} bytes whose SHA-256 is not the one apt's index gives")
    download = cache / "download"
    download.mkdir(parents=True, exist_ok=True)
    archive = download / orig.name
    archive.write_bytes(data)
    _unpack(archive, target)
    return f"Debian source package {package} {debian_version}: {orig.name}"


def _sqlite3(cache: Path, place: Path, servers: Servers) -> Prepared:
    try:
        import test.test_sqlite3  # noqa: F401
    except ImportError as exc:
        raise Unavailable(f"this interpreter has no test package: {exc}") from None
    return Prepared(place, [UNITTEST, "{out}", "test.test_sqlite3"], origin=f"Python {sys.version.split()[0]}")


def _psycopg2(cache: Path, place: Path, servers: Servers) -> Prepared:
    release = version("psycopg2-binary") if _installed("psycopg2-binary") else version("psycopg2")
    source = _sdist(cache, "psycopg2", release)
    server = servers.postgres
    assert server is not None
    env = {"PSYCOPG2_TESTDB": "psycopg2_test", "PSYCOPG2_TESTDB_HOST": server.host,
           "PSYCOPG2_TESTDB_PORT": str(server.port), "PSYCOPG2_TESTDB_USER": server.user,
           "PSYCOPG2_TESTDB_PASSWORD": server.password}
    return Prepared(source, [UNITTEST, "{out}", "tests:test_suite"], env, origin=f"sdist on PyPI ({source})")


def _pymysql(cache: Path, place: Path, servers: Servers) -> Prepared:
    release = version("PyMySQL")
    tree, origin = _debian_source(cache, "python-pymysql", "PyMySQL", release)
    source = _inside(tree, "pymysql/tests")
    server = servers.mariadb
    assert server is not None
    login = {"host": server.host, "port": server.port, "user": server.user, "password": server.password}
    # The databases' character set as PyMySQL's CI creates them (ci/docker-entrypoint-initdb.d).
    import pymysql

    with contextlib.closing(pymysql.connect(**login)) as conn, conn.cursor() as cursor:
        for database in ("test1", "test2"):
            cursor.execute(f"ALTER DATABASE {database} CHARACTER SET utf8mb4")
    (source / "databases.json").write_text(json.dumps([
        {**login, "database": "test1", "use_unicode": True, "local_infile": True},
        {**login, "database": "test2"},
    ]))
    # The tests are the subpackage pymysql.tests: put their directory on the installed
    # package's path (a pytest plugin loaded before collection), so that they import as they
    # do in PyMySQL's own checkout while pymysql itself is the installed release. Under
    # pytest, as PyMySQL runs them: they use pytest's skip and xfail marks.
    (place / "pymysql_tests_path.py").write_text(
        f"import pymysql\npymysql.__path__.append({str(source.parent)!r})\n")
    return Prepared(place, ["-m", "pytest", "-p", "pymysql_tests_path", "-o", "cache_dir={out}.cache", "-q",
                            "--junitxml={out}", "--pyargs", "pymysql.tests"],
                    {"PYTHONPATH": str(place)}, junit=True, origin=origin)


def _psycopg(cache: Path, place: Path, servers: Servers) -> Prepared:
    release = version("psycopg")
    tree, origin = _debian_source(cache, "psycopg3", "psycopg", release)
    source = _inside(tree, "tests")
    server = servers.postgres
    assert server is not None
    dsn = f"host={server.host} port={server.port} dbname=psycopg_test user={server.user} password={server.password}"
    return Prepared(source.parent, ["-m", "pytest", "-o", "cache_dir={out}.cache", "-q", "--junitxml={out}",
                                    "--test-dsn", dsn, *PSYCOPG_TESTS],
                    junit=True, origin=origin)


def _asyncpg(cache: Path, place: Path, servers: Servers) -> Prepared:
    source = _inside(_sdist(cache, "asyncpg", version("asyncpg")), "tests")
    server = servers.postgres
    assert server is not None
    # Run from *place*, where `tests` is the sdist's: from the sdist's own directory its
    # uncompiled `asyncpg/` would shadow the installed package.
    _link(place / "tests", source)
    env = {"PGHOST": server.host, "PGPORT": str(server.port), "PGUSER": server.user,
           "PGPASSWORD": server.password, "PGDATABASE": "postgres"}
    return Prepared(place, [UNITTEST, "{out}", "tests:suite"], env, origin=f"sdist on PyPI ({source.parent})")


def _redis(cache: Path, place: Path, servers: Servers) -> Prepared:
    tree = _sdist(cache, "redis", version("redis"))
    source = _inside(tree, "tests")
    server = servers.redis
    assert server is not None
    # From *place*, where `tests` is the sdist's and pyproject.toml its copy (redis-py's
    # pytest settings: asyncio_mode=auto above all), so that `redis` is the installed one.
    _link(place / "tests", source)
    shutil.copy(tree / "pyproject.toml", place / "pyproject.toml")
    return Prepared(place, ["-m", "pytest", "-o", "cache_dir={out}.cache", "-q", "--junitxml={out}",
                            "--redis-url", f"redis://{server.host}:{server.port}/0", *REDIS_TESTS],
                    junit=True, origin=f"sdist on PyPI ({tree})")


def _aiohttp(cache: Path, place: Path, servers: Servers) -> Prepared:
    tree = _sdist(cache, "aiohttp", version("aiohttp"))
    _link(place / "tests", _inside(tree, "tests"))
    shutil.copy(tree / "pytest.ini", place / "pytest.ini")  # warnings are errors, among others
    # Its addopts are for its CI (xdist, coverage, doctests of the package) and are replaced;
    # its -m is kept. Its tests run on aiohttp's own pytest plugin, not pytest-asyncio's
    # (installed for redis-py's). Websocket sessions are measured too (an option).
    return Prepared(place, ["-m", "pytest", "-o", "addopts=", "-p", "no:asyncio", "-o", "cache_dir={out}.cache",
                            "-q", "--junitxml={out}", "-m", "not dev_mode and not autobahn and not internal",
                            *AIOHTTP_TESTS],
                    {"INSTRUMENT_WEBSOCKET_SESSIONS": "true"}, junit=True, origin=f"sdist on PyPI ({tree})")


def _link(link: Path, target: Path) -> None:
    if not link.exists():
        link.symlink_to(target, target_is_directory=True)


def _inside(tree: Path, tests: str) -> Path:
    found = tree / tests
    if not found.is_dir():
        raise Unavailable(f"{tree} has no {tests}/")
    return found


# psycopg 3's whole suite, less what needs what this environment lacks: psycopg_pool
# (tests/pool), mypy runs (test_typing.py, the `mypy` marker), and tests psycopg marks
# as slow, timing-based or flakey (their outcome may differ between any two runs).
PSYCOPG_TESTS = ["tests", "--ignore=tests/pool", "--ignore=tests/test_typing.py",
                 "-m", "not slow and not timing and not flakey and not mypy"]

# redis-py's suite is some 9,000 tests, most of them of servers this one is not (clusters,
# sentinels, TLS, Redis Stack's modules, their own CI's multi-database setups) or of
# redis-py's connection internals. These are the ones that go through what the integration
# wraps (`Redis.execute_command`, `Pipeline.execute` and `immediate_execute_command`, sync
# and asyncio), with the connection pools that give their tags: every command's method,
# pipelines and transactions, locks and scripts (commands of their own), encodings, client
# construction. Pub/sub (its own `execute_command`, not timed) and connection-level tests
# are left out for time.
REDIS_TESTS = [f"tests/{asyncio}test_{name}.py" for asyncio in ("", "test_asyncio/")
               for name in ("commands", "pipeline", "connection_pool", "lock", "scripting", "encoding", "client")]

# aiohttp's suite is some 4,000 tests, most of them of its parsers, writers and helpers
# one by one. These are its functional tests: a real client and a real server talking
# HTTP and websockets over 127.0.0.1, both instrumented (`aiohttp_client`,
# `aiohttp_server`); the other files take 3 more minutes and go through neither.
AIOHTTP_TESTS = [f"tests/test_{name}_functional.py" for name in ("client", "web", "client_ws", "web_websocket")]

SUITES = {
    suite.name: suite
    for suite in (
        Suite("sqlite3", db("sqlite"), None, _sqlite3),
        Suite("psycopg2", db("postgresql"), "postgres", _psycopg2),
        Suite("pymysql", db("mysql"), "mariadb", _pymysql),
        # Not promised: the Debian archive this project's CI reaches serves no tarball of the
        # psycopg3 source package (HTTP 404 for 3.1.7, 3.2.6 and 3.3.5 when this was written),
        # so CI reports it NOT RUN; it runs wherever the tarball or a snapshot can be had.
        Suite("psycopg", db("postgresql"), "postgres", _psycopg, promised=False),
        Suite("asyncpg", db("postgresql"), "postgres", _asyncpg),
        Suite("redis", db("redis"), "redis", _redis),
        Suite("aiohttp", (("http.client.request.duration", ()), ("http.server.request.duration", ()),
                          ("websocket.server.session.duration", ())), None, _aiohttp),
    )
}


def _installed(distribution: str) -> bool:
    try:
        version(distribution)
    except Exception:
        return False
    return True


# --- running and comparing --------------------------------------------------------------------


def _junit_outcomes(path: Path) -> dict[str, str]:
    found: dict[str, str] = {}
    for case in ET.parse(path).iter("testcase"):
        key = f"{case.get('classname')}::{case.get('name')}"
        tags = {child.tag for child in case}
        if "error" in tags:
            outcome = "error"
        elif "failure" in tags:
            outcome = "failed"
        elif "skipped" in tags:
            skipped = case.find("skipped")
            outcome = "xfailed" if skipped is not None and skipped.get("type") == "pytest.xfail" else "skipped"
        else:
            outcome = "passed"
        found[key] = outcome
    return found


@dataclass
class Run:
    outcomes: dict[str, str]
    returncode: int
    seconds: float
    points: dict[Expected, int] = field(default_factory=dict)  # of each of the suite's `expects`


def _run(suite: Suite, prepared: Prepared, out: Path, instrumented: bool, log: Path) -> Run:
    env = {k: v for k, v in os.environ.items() if not k.startswith("INSTRUMENT_")}
    env.update(prepared.env)
    # The suite's directory is importable (psycopg2's suite is the package `tests` there).
    paths = [str(prepared.cwd), prepared.env.get("PYTHONPATH", ""), os.environ.get("PYTHONPATH", "")]
    env["PYTHONPATH"] = os.pathsep.join(p for p in paths if p)
    command = [sys.executable, *(a.replace("{out}", str(out)) for a in prepared.argv)]
    metrics = out.with_suffix(".jsonl")
    if instrumented:
        env["INSTRUMENT_JSONL_PATH"] = str(metrics)
        command = [sys.executable, "-m", "instrument", "run", "--exporter", "jsonl", "--", *command]
    start = time.monotonic()
    with open(log, "w") as output:
        result = subprocess.run(command, cwd=prepared.cwd, env=env, stdout=output, stderr=subprocess.STDOUT,
                                timeout=TIMEOUT, check=False)
    seconds = time.monotonic() - start
    outcomes: dict[str, str] = {}
    if out.exists():
        outcomes = _junit_outcomes(out) if prepared.junit else json.loads(out.read_text())
    points = dict.fromkeys(suite.expects, 0)
    if instrumented and metrics.exists():
        for line in metrics.read_text().splitlines():
            point = json.loads(line)
            for expected in suite.expects:
                name, tags = expected
                found = point.get("tags", {})
                if point.get("name") == name and all(found.get(k) == v for k, v in tags):
                    points[expected] += int(point.get("count", 0))
    return Run(outcomes, result.returncode, seconds, points)


def _pair(suite: Suite, prepared: Prepared, place: Path, attempt: str) -> dict[str, Run]:
    """The suite run plain, then instrumented."""
    runs: dict[str, Run] = {}
    for mode in ("plain", "instrumented"):
        out = place / f"{mode}{attempt}.{'xml' if prepared.junit else 'json'}"
        runs[mode] = _run(suite, prepared, out, mode == "instrumented", place / f"{mode}{attempt}.log")
    return runs


def unobtained(suite: Suite, in_ci: bool) -> str | None:
    """What a suite whose tests could not be obtained means for the run: a problem under CI
    (INSTRUMENT_CI=1) if CI promises to run it, else nothing beyond its NOT RUN row."""
    if in_ci and suite.promised:
        return f"{suite.name}: its tests could not be obtained, and CI promises to run them (see its NOT RUN row)"
    return None


TYPE_IDENTITY = "exact type identity"  # in the heading of each table of accepted differences
TIMING = "outcome depends on timing"


def allowed_differences(text: str | None = None, heading: str = TYPE_IDENTITY) -> dict[str, str]:
    """{test id: reason} from the table under the heading that says *heading* ("Tests that
    assert exact type identity", "Tests whose outcome depends on timing") in
    docs/databases.md (or in *text*)."""
    found: dict[str, str] = {}
    inside = False
    for line in (DOCS.read_text() if text is None else text).splitlines():
        if line.startswith("#"):
            inside = heading in line
            continue
        match = re.match(r"\|\s*`([^`]+)`\s*\|\s*([^|]*)\|", line) if inside else None
        if match:
            found[match.group(1)] = match.group(2).strip()
    return found


Difference = tuple[str, str]  # (outcome plain, outcome instrumented); "absent" when not run


def compare(plain: dict[str, str], instrumented: dict[str, str], allowed: dict[str, str],
            timing: dict[str, str] | None = None) -> tuple[dict[str, Difference], dict[str, Difference]]:
    """(differences that fail the run, differences accepted): a test whose outcome is not
    the same in both runs is accepted only if it is in *allowed* and it passed plain and
    failed instrumented, or if it is in *timing* and ran in both."""
    failing: dict[str, Difference] = {}
    accepted: dict[str, Difference] = {}
    for key in sorted(set(plain) | set(instrumented)):
        pair = (plain.get(key, "absent"), instrumented.get(key, "absent"))
        if pair[0] != pair[1]:
            ok = (key in allowed and pair == ("passed", "failed")) or (
                key in (timing or {}) and "absent" not in pair)
            (accepted if ok else failing)[key] = pair
    return failing, accepted


def _summary(outcomes: dict[str, str]) -> str:
    counts = Counter(outcomes.values())
    failed = counts["failed"] + counts["error"] + counts["xpassed"]
    return f"{counts['passed'] + counts['xfailed']}/{failed}/{counts['skipped']}"


@contextlib.contextmanager
def servers_for(suites: list[Suite]) -> Iterator[Servers]:
    with contextlib.ExitStack() as stack:
        found = Servers()
        if any(s.needs == "postgres" for s in suites):
            found.postgres = stack.enter_context(
                postgres_server(superuser=True, databases=("psycopg2_test", "psycopg_test")))
        if any(s.needs == "mariadb" for s in suites):
            found.mariadb = stack.enter_context(mariadb_server(superuser=True, databases=("test1", "test2")))
        if any(s.needs == "redis" for s in suites):
            # redis-py's suite runs DEBUG ERROR to make the server answer its errors.
            found.redis = stack.enter_context(redis_server(password=None, options=("--enable-debug-command", "local")))
        yield found


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--suite", action="append", choices=sorted(SUITES), help="run only these suites")
    parser.add_argument("--cache", type=Path,
                        default=Path(os.environ.get("INSTRUMENT_TRANSPARENCY_CACHE",
                                                    Path.home() / ".cache" / "instrument-transparency")))
    parser.add_argument("--keep", action="store_true", help="keep the run directory (logs, outcomes, metrics)")
    args = parser.parse_args(argv)
    args.cache.mkdir(parents=True, exist_ok=True)
    suites = [SUITES[name] for name in (args.suite or SUITES)]
    allowed = allowed_differences()
    timing = allowed_differences(heading=TIMING)
    started = time.monotonic()
    work = Path(tempfile.mkdtemp(prefix="instrument-transparency-"))
    rows: list[str] = []
    problems: list[str] = []
    notes: list[str] = []
    origins: list[str] = []
    in_ci = os.environ.get("INSTRUMENT_CI") == "1"
    try:
        with servers_for(suites) as servers:
            for suite in suites:
                place = work / suite.name
                place.mkdir()
                try:
                    prepared = suite.prepare(args.cache, place, servers)
                except Unavailable as exc:
                    promise = "" if suite.promised else " [not promised by CI: docs/databases.md]"
                    rows.append(f"{suite.name:9} NOT RUN: {exc}{promise}")
                    problem = unobtained(suite, in_ci)
                    if problem:
                        problems.append(problem)
                    continue
                origins.append(f"{suite.name}: {prepared.origin}")
                runs = _pair(suite, prepared, place, "")
                plain, inst = runs["plain"], runs["instrumented"]
                differ, excused = compare(plain.outcomes, inst.outcomes, allowed, timing)
                for key, pair in excused.items():
                    if key in timing:
                        notes.append(f"{suite.name}: {key}: {pair[0]} plain, {pair[1]} instrumented, accepted: "
                                     "its outcome depends on timing (docs/databases.md)")
                if differ:
                    # A difference counts if a second pair of whole runs shows it again: some
                    # suites have tests that depend on the machine's load (psycopg2's
                    # test_flush_on_write says so). Whole runs, not the tests alone, so that a
                    # difference caused by an earlier test's state is reproduced too.
                    again = _pair(suite, prepared, place, "-again")
                    repeated, _ = compare(again["plain"].outcomes, again["instrumented"].outcomes, allowed,
                                          timing)
                    for key, pair in differ.items():
                        if key not in repeated:
                            notes.append(f"{suite.name}: {key}: {pair[0]} plain, {pair[1]} instrumented, "
                                         "not repeated in a second pair of runs (load-dependent)")
                    differ = {key: pair for key, pair in differ.items() if key in repeated}
                for key, (was, now) in differ.items():
                    problems.append(f"{suite.name}: {key}: {was} plain, {now} instrumented")
                for mode, run in runs.items():
                    if run.returncode < 0 or not run.outcomes:
                        problems.append(f"{suite.name}: the {mode} run ended with {run.returncode} and "
                                        f"{len(run.outcomes)} outcomes (log: {place / (mode + '.log')})")
                for (name, tags), count in inst.points.items():
                    if count == 0:
                        problems.append(f"{suite.name}: the instrumented run recorded no {name} point"
                                        + "".join(f" {k}={v}" for k, v in tags))
                tests = len(set(plain.outcomes) | set(inst.outcomes))
                rows.append(f"{suite.name:9} {tests:6} {_summary(plain.outcomes):>16} "
                            f"{_summary(inst.outcomes):>16} {len(differ):7} {len(excused):8} "
                            f"{sum(inst.points.values()):10} {plain.seconds:7.0f}s {inst.seconds:6.0f}s")
    finally:
        if args.keep or problems:
            print(f"run directory kept: {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)
    print(f"\n{'suite':9} {'tests':>6} {'plain p/f/s':>16} {'instrumented':>16} {'differ':>7} {'allowed':>8} "
          f"{'points':>10} {'plain':>8} {'instr.':>7}")
    for row in rows:
        print(row)
    for origin in origins:
        print(f"tests of {origin}")
    for key, reason in allowed.items():
        print(f"allowed (docs/databases.md): {key}: {reason}")
    for note in notes:
        print(f"note: {note}")
    for problem in problems:
        print(f"PROBLEM: {problem}")
    print(f"\ntransparency: {len(problems)} problems, {time.monotonic() - started:.0f} s in all")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
