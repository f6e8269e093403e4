"""The transparency harness's own logic: which differences between the plain and the
instrumented run of a driver's suite fail it, and how outcomes are read."""

from __future__ import annotations

import hashlib
import tarfile
import textwrap
from pathlib import Path

import pytest

from . import run as harness
from .run import (
    DOCS,
    SUITES,
    TIMING,
    DebianFile,
    Unavailable,
    _junit_outcomes,
    allowed_differences,
    compare,
    debian_orig,
    debian_upstream,
    debian_versions,
    unobtained,
)

ALLOWED = {"t.Tests.test_type": "asserts type(cx) == Connection"}


class TestCompare:
    def test_same_outcomes_do_not_differ(self):
        """Every test with one outcome in both runs, failures included, is no difference."""
        runs = {"t.a": "passed", "t.b": "failed", "t.c": "skipped"}
        assert ({}, {}) == compare(runs, dict(runs), ALLOWED)

    def test_a_test_failing_only_instrumented_fails_the_run(self):
        """A pass that becomes a failure or an error is reported, whatever the test."""
        failing, accepted = compare({"t.a": "passed", "t.b": "passed"}, {"t.a": "failed", "t.b": "error"}, ALLOWED)
        assert {"t.a": ("passed", "failed"), "t.b": ("passed", "error")} == failing
        assert {} == accepted

    def test_a_test_missing_from_one_run_fails_the_run(self):
        """A test that one run never reached (a crash) is a difference."""
        failing, _ = compare({"t.a": "passed", "t.b": "passed"}, {"t.a": "passed"}, ALLOWED)
        assert {"t.b": ("passed", "absent")} == failing

    def test_listed_type_identity_tests_may_fail_instrumented_only(self):
        """A listed test is accepted failing under instrumentation, and only that way round."""
        assert ({}, {"t.Tests.test_type": ("passed", "failed")}) == compare(
            {"t.Tests.test_type": "passed"}, {"t.Tests.test_type": "failed"}, ALLOWED)
        failing, _ = compare({"t.Tests.test_type": "passed"}, {"t.Tests.test_type": "error"}, ALLOWED)
        assert {"t.Tests.test_type": ("passed", "error")} == failing

    def test_listed_timing_dependent_tests_may_differ_either_way(self):
        """A test listed as depending on timing is accepted with any two outcomes, as long as
        it ran in both runs; a test of the type-identity list is not accepted that way."""
        timing = {"t.Pool.test_race": "a race in the library's teardown"}
        plain = {"t.Pool.test_race": "failed", "t.Tests.test_type": "failed"}
        instrumented = {"t.Pool.test_race": "passed", "t.Tests.test_type": "passed"}
        failing, accepted = compare(plain, instrumented, ALLOWED, timing)
        assert {"t.Tests.test_type": ("failed", "passed")} == failing
        assert {"t.Pool.test_race": ("failed", "passed")} == accepted
        failing, _ = compare({"t.Pool.test_race": "passed"}, {}, ALLOWED, timing)
        assert {"t.Pool.test_race": ("passed", "absent")} == failing


class TestAllowedDifferences:
    def test_read_from_their_section_only(self):
        """Only rows of the type-identity table count; other tables are ignored."""
        text = textwrap.dedent("""
            ## Something else
            | `t.Other.test_x` | not this one |
            ### Tests that assert exact type identity
            | test | reason |
            |---|---|
            | `t.Tests.test_type` | asserts type(cx) == Connection |
            ## Overhead
            | `t.Later.test_y` | nor this one |
            """)
        assert ALLOWED == allowed_differences(text)

    def test_timing_dependent_tests_have_their_own_table(self):
        text = textwrap.dedent("""
            ### Tests that assert exact type identity
            | `t.Tests.test_type` | asserts type(cx) == Connection |
            ### Tests whose outcome depends on timing
            | test | reason |
            |---|---|
            | `t.Pool.test_race` | a race in the library's teardown |
            """)
        assert ALLOWED == allowed_differences(text)
        assert {"t.Pool.test_race": "a race in the library's teardown"} == allowed_differences(text, TIMING)

    def test_the_documented_list_is_not_empty(self):
        """docs/databases.md lists each accepted test with a reason."""
        found = allowed_differences()
        assert found and all(reason for reason in found.values()), DOCS


class TestJunitOutcomes:
    def test_each_kind_of_outcome(self, tmp_path: Path):
        """pytest's junit XML maps to the same outcome names as the unittest runner's JSON."""
        xml = tmp_path / "out.xml"
        xml.write_text(textwrap.dedent("""\
            <testsuites><testsuite>
              <testcase classname="tests.test_a" name="test_ok"/>
              <testcase classname="tests.test_a" name="test_bad"><failure message="x"/></testcase>
              <testcase classname="tests.test_a" name="test_broken"><error message="x"/></testcase>
              <testcase classname="tests.test_a" name="test_skip"><skipped type="pytest.skip" message="x"/></testcase>
              <testcase classname="tests.test_a" name="test_xf"><skipped type="pytest.xfail" message="x"/></testcase>
            </testsuite></testsuites>
            """))
        assert {"tests.test_a::test_ok": "passed", "tests.test_a::test_bad": "failed",
                "tests.test_a::test_broken": "error", "tests.test_a::test_skip": "skipped",
                "tests.test_a::test_xf": "xfailed"} == _junit_outcomes(xml)


class TestDebianSource:
    """PyMySQL's and psycopg 3's suites come from the upstream tarball of Debian's source
    package of the installed version, checked against the SHA-256 of apt's index."""

    SHOWSRC = textwrap.dedent("""\
        Package: python-pymysql
        Binary: python3-pymysql, python-pymysql-doc
        Version: 1.0.2-2+deb12u1
        Directory: pool/main/p/python-pymysql

        Package: python-pymysql
        Binary: python3-pymysql, python-pymysql-doc
        Version: 1.1.1-2
        Directory: pool/main/p/python-pymysql
        """)

    def test_upstream_version(self):
        """Epoch, Debian revision and repacking suffixes are not part of the upstream version."""
        assert "1.1.1" == debian_upstream("1.1.1-2")
        assert "1.0.2" == debian_upstream("1.0.2-2+deb12u1")
        assert "3.2.6" == debian_upstream("1:3.2.6+ds-1~bpo12+1")
        assert "3.1.7" == debian_upstream("3.1.7")

    def test_versions_of_each_stanza(self):
        assert ["1.0.2-2+deb12u1", "1.1.1-2"] == debian_versions(self.SHOWSRC)
        assert [] == debian_versions("")

    def test_the_upstream_tarball_among_the_listed_files(self):
        """Only the .orig tarball is taken: the suite is upstream's, not Debian's patched tree."""
        sha, c = "a" * 64, "c" * 64
        listing = textwrap.dedent(f"""\
            Reading package lists...
            NOTICE: 'python-pymysql' packaging is maintained in the 'Git' version control system at:
            'http://a.invalid/p/python-pymysql_1.1.1-2.dsc' python-pymysql_1.1.1-2.dsc 2297 SHA256:{"b" * 64}
            'http://a.invalid/p/python-pymysql_1.1.1.orig.tar.xz' python-pymysql_1.1.1.orig.tar.xz 72860 SHA256:{sha}
            'http://a.invalid/p/python-pymysql_1.1.1-2.debian.tar.xz' python-pymysql_1.1.1-2.debian.tar.xz 7 SHA256:{c}
            """)
        assert DebianFile("http://a.invalid/p/python-pymysql_1.1.1.orig.tar.xz",
                          "python-pymysql_1.1.1.orig.tar.xz", 72860, sha) == debian_orig(listing)
        assert debian_orig("E: Unable to find a source package for python-pymysql\n") is None

    def _archive(self, tmp_path: Path) -> tuple[Path, str]:
        tree = tmp_path / "build" / "python-pymysql-1.1.1"
        (tree / "pymysql" / "tests").mkdir(parents=True)
        (tree / "pymysql" / "tests" / "test_basic.py").write_text("# upstream's\n")
        archive = tmp_path / "python-pymysql_1.1.1.orig.tar.xz"
        with tarfile.open(archive, "w:xz") as tar:
            tar.add(tree, arcname=tree.name)
        return archive, hashlib.sha256(archive.read_bytes()).hexdigest()

    def _fake_apt(self, monkeypatch, showsrc: str, archive: Path, sha: str) -> list[tuple[str, ...]]:
        calls: list[tuple[str, ...]] = []

        def apt(*argv: str) -> str:
            calls.append(argv)
            if argv[:2] == ("apt-cache", "showsrc"):
                return showsrc
            size = archive.stat().st_size
            return f"'{archive.as_uri()}' {archive.name} {size} SHA256:{sha}\n"

        monkeypatch.setattr(harness, "_apt", apt)
        monkeypatch.setattr(harness.shutil, "which", lambda name: f"/usr/bin/{name}")
        return calls

    def test_downloaded_checked_unpacked_and_kept(self, tmp_path: Path, monkeypatch):
        """The version whose upstream part is the installed release is fetched once, unpacked
        as <project>-<release>, and reused with where it came from."""
        archive, sha = self._archive(tmp_path)
        calls = self._fake_apt(monkeypatch, self.SHOWSRC, archive, sha)
        cache = tmp_path / "cache"
        cache.mkdir()
        tree, origin = harness._debian_source(cache, "python-pymysql", "PyMySQL", "1.1.1")
        assert cache / "PyMySQL-1.1.1" == tree
        assert "# upstream's\n" == (tree / "pymysql" / "tests" / "test_basic.py").read_text()
        assert ("apt-get", "source", "--print-uris", "python-pymysql=1.1.1-2") in calls
        assert "python-pymysql 1.1.1-2" in origin
        calls.clear()
        again, origin_again = harness._debian_source(cache, "python-pymysql", "PyMySQL", "1.1.1")
        assert (tree, []) == (again, calls)
        assert origin in origin_again

    def test_a_tarball_of_another_checksum_is_refused(self, tmp_path: Path, monkeypatch):
        archive, _ = self._archive(tmp_path)
        self._fake_apt(monkeypatch, self.SHOWSRC, archive, "0" * 64)
        cache = tmp_path / "cache"
        cache.mkdir()
        with pytest.raises(Unavailable, match="SHA-256"):
            harness._debian_source(cache, "python-pymysql", "PyMySQL", "1.1.1")
        assert not (cache / "PyMySQL-1.1.1").exists()

    def test_no_source_of_the_installed_version(self, tmp_path: Path, monkeypatch):
        """The message names Debian's versions and says to pin one in tox.ini."""
        archive, sha = self._archive(tmp_path)
        self._fake_apt(monkeypatch, self.SHOWSRC, archive, sha)
        with pytest.raises(Unavailable, match=r"1\.0\.2-2\+deb12u1, 1\.1\.1-2.*1\.2\.4 is installed.*tox\.ini"):
            harness._debian_source(tmp_path, "python-pymysql", "PyMySQL", "1.2.4")

    def test_no_deb_src_entry_says_what_to_run(self, tmp_path: Path, monkeypatch):
        archive, sha = self._archive(tmp_path)
        self._fake_apt(monkeypatch, "", archive, sha)
        with pytest.raises(Unavailable, match=r"deb-src.*\.ci/run.*apt-get update"):
            harness._debian_source(tmp_path, "python-pymysql", "PyMySQL", "1.1.1")


class TestUnobtained:
    def test_a_promised_suite_fails_ci_only(self):
        """Under INSTRUMENT_CI=1 a promised suite that cannot be obtained is a problem;
        elsewhere it is only reported NOT RUN."""
        assert unobtained(SUITES["pymysql"], in_ci=True)
        assert unobtained(SUITES["pymysql"], in_ci=False) is None

    def test_which_suites_ci_promises(self):
        """psycopg 3's is the one whose source CI's network does not serve."""
        assert {"sqlite3", "psycopg2", "pymysql", "asyncpg", "redis", "aiohttp"} == {
            name for name, suite in SUITES.items() if suite.promised}
        assert unobtained(SUITES["psycopg"], in_ci=True) is None


class TestUnpack:
    def test_one_top_directory_becomes_the_target(self, tmp_path: Path):
        archive = tmp_path / "a.tar.gz"
        (tmp_path / "src" / "proj-1.0" / "tests").mkdir(parents=True)
        with tarfile.open(archive, "w:gz") as tar:
            tar.add(tmp_path / "src" / "proj-1.0", arcname="proj-1.0")
        harness._unpack(archive, tmp_path / "proj")
        assert (tmp_path / "proj" / "tests").is_dir()

    def test_several_top_entries_are_kept_together(self, tmp_path: Path):
        archive = tmp_path / "a.tar.gz"
        (tmp_path / "src" / "tests").mkdir(parents=True)
        (tmp_path / "src" / "README").write_text("x")
        with tarfile.open(archive, "w:gz") as tar:
            tar.add(tmp_path / "src" / "tests", arcname="tests")
            tar.add(tmp_path / "src" / "README", arcname="README")
        harness._unpack(archive, tmp_path / "proj")
        assert (tmp_path / "proj" / "tests").is_dir() and (tmp_path / "proj" / "README").is_file()
