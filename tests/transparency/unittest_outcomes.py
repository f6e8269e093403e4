"""Run a unittest suite and write each test's outcome to a JSON file.

    python unittest_outcomes.py OUT.json MODULE[:FACTORY] [MODULE ...]

MODULE is loaded with unittest's loader (its ``load_tests`` honoured; a package without
one has its ``test*.py`` modules discovered); MODULE:FACTORY
calls ``FACTORY()`` for the suite (psycopg2's ``tests:test_suite``). The JSON maps each
test id to ``passed``, ``failed``, ``error``, ``skipped``, ``xfailed`` or ``xpassed``;
a test that fails several subtests is ``failed`` once. Used by `run.py`, which runs
the same suite with and without ``instrument run`` and compares the two files.
"""

from __future__ import annotations

import importlib
import json
import os
import sys
import unittest
from typing import Any

_RANK = {"passed": 0, "skipped": 1, "xfailed": 1, "xpassed": 2, "failed": 3, "error": 4}


class Outcomes(unittest.TextTestResult):
    """A text result (progress on stderr) that also keeps each test's worst outcome."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.outcomes: dict[str, str] = {}

    def _note(self, test: Any, outcome: str) -> None:
        key = test.id()
        if _RANK[outcome] >= _RANK[self.outcomes.get(key, "passed")]:
            self.outcomes[key] = outcome

    def addSuccess(self, test: Any) -> None:
        super().addSuccess(test)
        self.outcomes.setdefault(test.id(), "passed")

    def addFailure(self, test: Any, err: Any) -> None:
        super().addFailure(test, err)
        self._note(test, "failed")

    def addError(self, test: Any, err: Any) -> None:
        super().addError(test, err)
        self._note(test, "error")

    def addSkip(self, test: Any, reason: str) -> None:
        super().addSkip(test, reason)
        self._note(test, "skipped")

    def addExpectedFailure(self, test: Any, err: Any) -> None:
        super().addExpectedFailure(test, err)
        self._note(test, "xfailed")

    def addUnexpectedSuccess(self, test: Any) -> None:
        super().addUnexpectedSuccess(test)
        self._note(test, "xpassed")

    def addSubTest(self, test: Any, subtest: Any, err: Any) -> None:
        super().addSubTest(test, subtest, err)
        if err is not None:
            failure = issubclass(err[0], test.failureException)
            self._note(test, "failed" if failure else "error")


def load(spec: str) -> unittest.TestSuite:
    """The tests of MODULE (its ``load_tests``, or those discovered in it if it is a
    package without one), or of MODULE:FACTORY."""
    module_name, _, factory = spec.partition(":")
    module = importlib.import_module(module_name)
    if factory:
        suite: unittest.TestSuite = getattr(module, factory)()
        return suite
    if hasattr(module, "__path__") and not hasattr(module, "load_tests"):
        start = os.path.dirname(os.path.abspath(module.__file__ or ""))
        top = start
        for _ in module_name.split("."):
            top = os.path.dirname(top)
        return unittest.defaultTestLoader.discover(start, "test*.py", top)
    return unittest.defaultTestLoader.loadTestsFromModule(module)


def main() -> int:
    out, specs = sys.argv[1], sys.argv[2:]
    suite = unittest.TestSuite(load(spec) for spec in specs)
    runner = unittest.TextTestRunner(resultclass=Outcomes, verbosity=1, stream=sys.stderr)
    result = runner.run(suite)
    assert isinstance(result, Outcomes)
    with open(out, "w") as f:
        json.dump(result.outcomes, f, indent=0, sort_keys=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
