"""Shared fixtures: a memory exporter wired into the pipeline."""

from __future__ import annotations

import signal

import pytest

import instrument
from instrument.exporters.memory import MemoryExporter
from instrument.testing import reset


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
