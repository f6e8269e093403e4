"""The integrations' error policy: their own failures are logged once, with the integration's
name, and never reach the instrumented program."""

from __future__ import annotations

import logging

import instrument
from instrument._metrics import TIMER
from instrument.integrations._failures import failed
from instrument.integrations._tagged import Tagged


def messages(caplog, text):
    return [r.getMessage() for r in caplog.records if text in r.getMessage()]


class TestFailed:
    def test_logged_once_with_the_integration_and_the_traceback(self, caplog):
        """The same failure twice: one error line naming the integration, with the exception attached."""
        with caplog.at_level(logging.ERROR, logger="instrument"):
            for _ in range(2):
                try:
                    raise RuntimeError("hook bug")
                except RuntimeError:
                    failed("toy-once", "install", "toy runs uninstrumented")
        assert ["instrument: integration 'toy-once' failed to install; toy runs uninstrumented"] == messages(
            caplog, "toy-once")
        assert "hook bug" in caplog.records[-1].exc_text

    def test_shared_code_names_every_integration_using_it(self, caplog):
        """A helper shared by several integrations names them all, so each can be disabled."""
        with caplog.at_level(logging.ERROR, logger="instrument"):
            try:
                raise RuntimeError("shared")
            except RuntimeError:
                failed(("toy-a", "toy-b"), "record toy.metric", "those measurements are dropped")
        assert ["instrument: integrations 'toy-a', 'toy-b' failed to record toy.metric; those measurements are "
                "dropped"] == messages(caplog, "toy-a")


class TestTagged:
    def test_a_value_that_cannot_be_recorded_is_dropped_and_logged_once(self, caplog):
        """The application declared the name as a counter: the integration's records are dropped, the
        call goes on, and the clash is said once."""
        instrument.count("failures.clash")
        tagged = Tagged("failures.clash", TIMER, "s", ("k",), integration="toy-clash")
        with caplog.at_level(logging.ERROR, logger="instrument"):
            tagged.record(("v",), 1)
            tagged.record(("v",), 2)
        assert ["instrument: integration 'toy-clash' failed to record failures.clash; those measurements are "
                "dropped"] == messages(caplog, "toy-clash")
