"""The transparency harness's own logic: which differences between the plain and the
instrumented run of a driver's suite fail it, and how outcomes are read."""

from __future__ import annotations

import textwrap
from pathlib import Path

from .run import DOCS, _junit_outcomes, allowed_differences, compare

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
