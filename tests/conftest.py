"""Shared fixtures: a memory exporter wired into the pipeline."""

from __future__ import annotations

import os
import signal
import sys

import pytest

import instrument
from instrument.exporters.memory import MemoryExporter
from instrument.testing import reset

from .helpers import FREE_THREADED


@pytest.fixture
def exported():
    """A MemoryExporter receiving every batch; export only happens on flush(). Afterwards
    instrument is as it was right after import."""
    exporter = MemoryExporter()
    instrument.flush(5.0)  # earlier tests' records go to earlier exporters
    instrument.configure(exporters=[exporter], interval=3600.0, enabled=True)
    yield exporter
    instrument.flush(5.0)
    reset()


# A process started in the background by a non-interactive shell (`cmd &`, as a CI
# runner may do) inherits SIGINT ignored, and so would every server the tests start
# and stop with SIGINT. Python only installs its KeyboardInterrupt handler when SIGINT
# is not ignored; install it here so children start with the default disposition.
if signal.getsignal(signal.SIGINT) == signal.SIG_IGN:
    signal.signal(signal.SIGINT, signal.default_int_handler)


def pytest_configure(config: pytest.Config) -> None:
    """On free-threaded CPython, a module that would turn the GIL back on fails to import
    (its tests then fail, or skip when tests/helpers.py's GIL_ONLY names it), so that the
    suite never runs with the GIL on without saying so."""
    if FREE_THREADED:
        config.addinivalue_line("filterwarnings", "error:The global interpreter lock:RuntimeWarning")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Tests marked ``once`` (slow, and not about the interpreter: a real Prometheus server, a
    million-line report) skip where INSTRUMENT_SKIP_ONCE=1: tox sets it for the interpreters
    that repeat what py311 (and py313t) already ran, to keep CI within its time."""
    if os.environ.get("INSTRUMENT_SKIP_ONCE") != "1":
        return
    skip = pytest.mark.skip(reason="slow and not about the interpreter: py311 runs it (INSTRUMENT_SKIP_ONCE=1 here)")
    for item in items:
        if item.get_closest_marker("once") is not None:
            item.add_marker(skip)


def pytest_sessionfinish(session: pytest.Session) -> None:
    """...and a GIL turned on all the same (by a subprocess-free path we did not foresee) fails the run."""
    if FREE_THREADED and sys._is_gil_enabled():  # type: ignore[attr-defined]
        session.exitstatus = pytest.ExitCode.TESTS_FAILED
        print("\nerror: the GIL was turned on during the test session", file=sys.stderr)
