"""The database drivers' own test suites, run twice: plain and under ``instrument run``.

    python tests/transparency/run.py [--suite NAME ...] [--cache DIR]

Each suite runs once as it is and once under ``instrument run --exporter jsonl``, against
real servers this script starts on 127.0.0.1 (see tests/integrations/db_servers.py).
The run fails when any test's outcome differs between the two runs (and again in a
second pair of runs, which is made only when the first pair differs: some suites have
load-dependent tests), when a run crashes, or when the instrumented run recorded no ``db.client.operation.duration``
point of the suite's database system (the instrumentation would not have been
exercised). The only differences accepted are those listed, with the reason, under
"Tests that assert exact type identity" in docs/databases.md.

Suites and where their tests come from (downloaded at run time into --cache, never
committed):

- ``sqlite3``: CPython's ``test.test_sqlite3``, which ships with the interpreter.
- ``psycopg2``: the ``tests/`` of psycopg2's sdist on PyPI, for the installed version,
  on PostgreSQL.
- ``pymysql``: ``pymysql/tests`` of PyMySQL's source, on MariaDB. PyPI's sdist and
  wheel of PyMySQL do not include them: they are read from --cache, where a GitHub
  snapshot of the repository must have been unpacked (see docs/databases.md).
- ``psycopg``: psycopg 3's ``tests/``, on PostgreSQL. Not in its sdist either: read
  from --cache in the same way.

A suite whose tests cannot be found is reported as NOT RUN and does not fail the run;
every other problem does.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
import xml.etree.ElementTree as ET
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from importlib.metadata import version
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from tests.integrations.db_servers import Server, mariadb_server, postgres_server  # noqa: E402

HERE = Path(__file__).resolve().parent
UNITTEST = str(HERE / "unittest_outcomes.py")
DOCS = ROOT / "docs" / "databases.md"
METRIC = "db.client.operation.duration"
TIMEOUT = 900  # seconds for one run of one suite


class Unavailable(Exception):
    """The suite's tests cannot be obtained here: reported as NOT RUN."""


@dataclass
class Prepared:
    """How to run one suite: from *cwd*, ``python`` + *argv* (where ``{out}`` is the
    file the outcomes land in: JSON, or pytest's junit XML if *junit*), with *env* added."""

    cwd: Path
    argv: list[str]
    env: dict[str, str] = field(default_factory=dict)
    junit: bool = False


@dataclass
class Servers:
    postgres: Server | None = None
    mariadb: Server | None = None


@dataclass
class Suite:
    name: str
    system: str  # the db.system.name its instrumented run must record
    needs: str | None  # "postgres", "mariadb" or None
    prepare: Callable[[Path, Path, Servers], Prepared]  # (cache, run directory, servers)


# --- obtaining the suites -----------------------------------------------------------------


def _sdist(cache: Path, distribution: str, release: str) -> Path:
    """The unpacked sdist of *distribution* *release*, downloaded from PyPI once."""
    target = cache / f"{distribution}-{release}"
    if target.is_dir():
        return target
    download = cache / "download"
    download.mkdir(parents=True, exist_ok=True)
    subprocess.run([sys.executable, "-m", "pip", "download", "--quiet", "--no-binary", ":all:", "--no-deps",
                    "--dest", str(download), f"{distribution}=={release}"], check=True, timeout=300)
    archive = next(p for p in download.iterdir() if p.name.lower().startswith(f"{distribution.lower()}-{release}")
                   and p.name.endswith(".tar.gz"))
    with tempfile.TemporaryDirectory(dir=cache) as scratch, tarfile.open(archive) as tar:
        tar.extractall(scratch, filter="data")
        (unpacked,) = Path(scratch).iterdir()
        unpacked.rename(target)
    return target


def _snapshot(cache: Path, name: str, release: str, inside: str) -> Path:
    """``cache/<name>-<release>/<inside>``, unpacked there from a snapshot of the
    project's repository (see docs/databases.md), or `Unavailable`."""
    found = cache / f"{name}-{release}" / inside
    if not found.is_dir():
        raise Unavailable(f"{name} {release}'s tests are not on PyPI and {found} does not exist "
                          "(docs/databases.md says how to unpack them there)")
    return found


def _sqlite3(cache: Path, place: Path, servers: Servers) -> Prepared:
    try:
        import test.test_sqlite3  # noqa: F401
    except ImportError as exc:
        raise Unavailable(f"this interpreter has no test package: {exc}") from None
    return Prepared(place, [UNITTEST, "{out}", "test.test_sqlite3"])


def _psycopg2(cache: Path, place: Path, servers: Servers) -> Prepared:
    release = version("psycopg2-binary") if _installed("psycopg2-binary") else version("psycopg2")
    source = _sdist(cache, "psycopg2", release)
    server = servers.postgres
    assert server is not None
    env = {"PSYCOPG2_TESTDB": "psycopg2_test", "PSYCOPG2_TESTDB_HOST": server.host,
           "PSYCOPG2_TESTDB_PORT": str(server.port), "PSYCOPG2_TESTDB_USER": server.user,
           "PSYCOPG2_TESTDB_PASSWORD": server.password}
    return Prepared(source, [UNITTEST, "{out}", "tests:test_suite"], env)


def _pymysql(cache: Path, place: Path, servers: Servers) -> Prepared:
    release = version("PyMySQL")
    source = _snapshot(cache, "PyMySQL", release, "pymysql/tests")
    server = servers.mariadb
    assert server is not None
    login = {"host": server.host, "port": server.port, "user": server.user, "password": server.password}
    (source / "databases.json").write_text(json.dumps([
        {**login, "database": "test1", "use_unicode": True, "local_infile": True},
        {**login, "database": "test2"},
    ]))
    # The tests are the subpackage pymysql.tests: put their directory on the installed
    # package's path, so that they import as they do in PyMySQL's own checkout.
    (place / "pymysql_tests_path.py").write_text(
        f"import pymysql\npymysql.__path__.append({str(source.parent)!r})\n")
    return Prepared(place, [UNITTEST, "{out}", "pymysql_tests_path", "pymysql.tests"], {"PYTHONPATH": str(place)})


def _psycopg(cache: Path, place: Path, servers: Servers) -> Prepared:
    release = version("psycopg")
    source = _snapshot(cache, "psycopg", release, "tests")
    server = servers.postgres
    assert server is not None
    dsn = f"host={server.host} port={server.port} dbname=psycopg_test user={server.user} password={server.password}"
    return Prepared(source.parent, ["-m", "pytest", "-o", "cache_dir={out}.cache", "-q", "--junitxml={out}",
                                    "--test-dsn", dsn, *PSYCOPG_TESTS],
                    junit=True)


# psycopg 3's whole suite, less what needs what this environment lacks: psycopg_pool
# (tests/pool), mypy runs (test_typing.py, the `mypy` marker), and tests psycopg marks
# as slow, timing-based or flakey (their outcome may differ between any two runs).
PSYCOPG_TESTS = ["tests", "--ignore=tests/pool", "--ignore=tests/test_typing.py",
                 "-m", "not slow and not timing and not flakey and not mypy"]

SUITES = {
    suite.name: suite
    for suite in (
        Suite("sqlite3", "sqlite", None, _sqlite3),
        Suite("psycopg2", "postgresql", "postgres", _psycopg2),
        Suite("pymysql", "mysql", "mariadb", _pymysql),
        Suite("psycopg", "postgresql", "postgres", _psycopg),
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
    points: int = 0  # db.client.operation.duration points of the suite's system


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
    points = 0
    if instrumented and metrics.exists():
        for line in metrics.read_text().splitlines():
            point = json.loads(line)
            if point.get("name") == METRIC and point.get("tags", {}).get("db.system.name") == suite.system:
                points += int(point.get("count", 0))
    return Run(outcomes, result.returncode, seconds, points)


def _pair(suite: Suite, prepared: Prepared, place: Path, attempt: str) -> dict[str, Run]:
    """The suite run plain, then instrumented."""
    runs: dict[str, Run] = {}
    for mode in ("plain", "instrumented"):
        out = place / f"{mode}{attempt}.{'xml' if prepared.junit else 'json'}"
        runs[mode] = _run(suite, prepared, out, mode == "instrumented", place / f"{mode}{attempt}.log")
    return runs


def allowed_differences(text: str | None = None) -> dict[str, str]:
    """{test id: reason} from the table under "Tests that assert exact type identity" in
    docs/databases.md (or in *text*)."""
    found: dict[str, str] = {}
    inside = False
    for line in (DOCS.read_text() if text is None else text).splitlines():
        if line.startswith("#"):
            inside = "exact type identity" in line
            continue
        match = re.match(r"\|\s*`([^`]+)`\s*\|\s*([^|]*)\|", line) if inside else None
        if match:
            found[match.group(1)] = match.group(2).strip()
    return found


Difference = tuple[str, str]  # (outcome plain, outcome instrumented); "absent" when not run


def compare(plain: dict[str, str], instrumented: dict[str, str],
            allowed: dict[str, str]) -> tuple[dict[str, Difference], dict[str, Difference]]:
    """(differences that fail the run, differences accepted): a test whose outcome is not
    the same in both runs is accepted only if it is in *allowed* and it passed plain and
    failed instrumented."""
    failing: dict[str, Difference] = {}
    accepted: dict[str, Difference] = {}
    for key in sorted(set(plain) | set(instrumented)):
        pair = (plain.get(key, "absent"), instrumented.get(key, "absent"))
        if pair[0] != pair[1]:
            (accepted if key in allowed and pair == ("passed", "failed") else failing)[key] = pair
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
    started = time.monotonic()
    work = Path(tempfile.mkdtemp(prefix="instrument-transparency-"))
    rows: list[str] = []
    problems: list[str] = []
    notes: list[str] = []
    try:
        with servers_for(suites) as servers:
            for suite in suites:
                place = work / suite.name
                place.mkdir()
                try:
                    prepared = suite.prepare(args.cache, place, servers)
                except Unavailable as exc:
                    rows.append(f"{suite.name:9} NOT RUN: {exc}")
                    continue
                runs = _pair(suite, prepared, place, "")
                plain, inst = runs["plain"], runs["instrumented"]
                differ, excused = compare(plain.outcomes, inst.outcomes, allowed)
                if differ:
                    # A difference counts if a second pair of whole runs shows it again: some
                    # suites have tests that depend on the machine's load (psycopg2's
                    # test_flush_on_write says so). Whole runs, not the tests alone, so that a
                    # difference caused by an earlier test's state is reproduced too.
                    again = _pair(suite, prepared, place, "-again")
                    repeated, _ = compare(again["plain"].outcomes, again["instrumented"].outcomes, allowed)
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
                if inst.points == 0:
                    problems.append(f"{suite.name}: the instrumented run recorded no {METRIC} point "
                                    f"for db.system.name={suite.system}")
                tests = len(set(plain.outcomes) | set(inst.outcomes))
                rows.append(f"{suite.name:9} {tests:6} {_summary(plain.outcomes):>16} "
                            f"{_summary(inst.outcomes):>16} {len(differ):7} {len(excused):8} "
                            f"{inst.points:10} {plain.seconds:7.0f}s {inst.seconds:6.0f}s")
    finally:
        if args.keep or problems:
            print(f"run directory kept: {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)
    print(f"\n{'suite':9} {'tests':>6} {'plain p/f/s':>16} {'instrumented':>16} {'differ':>7} {'allowed':>8} "
          f"{'db points':>10} {'plain':>8} {'instr.':>7}")
    for row in rows:
        print(row)
    for key, reason in allowed.items():
        print(f"allowed (docs/databases.md): {key}: {reason}")
    for note in notes:
        print(f"note: {note}")
    for problem in problems:
        print(f"DIFFERS: {problem}")
    print(f"\ntransparency: {len(problems)} problems, {time.monotonic() - started:.0f} s in all")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
