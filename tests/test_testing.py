"""instrument.testing.capture(): assert on what your own code recorded."""

from __future__ import annotations

import threading

import pytest

import instrument
from instrument.testing import capture


def test_captures_only_what_the_block_recorded():
    instrument.count("testing.before")
    with capture() as captured:
        instrument.count("testing.inside", 2)
    instrument.count("testing.after")
    assert ["testing.inside"] == captured.names()
    assert 2 == captured.value("testing.inside")


def test_records_from_other_threads_are_included():
    with capture() as captured:
        t = threading.Thread(target=instrument.count, args=("testing.thread",))
        t.start()
        t.join()
    assert 1 == captured.value("testing.thread")


def test_find_and_one():
    with capture() as captured:
        instrument.count("testing.find", tags={"a": 1, "b": 2})
        instrument.count("testing.find", tags={"a": 1, "b": 3})
    assert 2 == len(captured.find("testing.find", {"a": 1}))
    assert 1 == captured.value("testing.find", {"a": 1, "b": 3})
    with pytest.raises(AssertionError, match="expected one series 'testing.find' with tags"):
        captured.one("testing.find", {"a": 1})


def test_self_metrics_only_on_request():
    with capture() as plain:
        instrument.count("testing.self")
    with capture(include_self_metrics=True) as everything:
        instrument.count("testing.self")
    assert not any(n.startswith("instrument.") for n in plain.names())
    assert "instrument.records.dropped" in everything.names()


def test_histogram_lookup_of_a_counter_fails_clearly():
    with capture() as captured:
        instrument.count("testing.kind")
    with pytest.raises(AssertionError, match="not a histogram"):
        captured.histogram("testing.kind")
