"""asyncio event-loop lag: a loop blocked by a synchronous call shows the block as lag; an idle
loop shows next to none; the sampler leaves nothing behind once the loop stops."""

from __future__ import annotations

import asyncio
import time

import pytest

import instrument.auto
from instrument.testing import capture

from ..helpers import require_module

LAG = "asyncio.event_loop.lag"


@pytest.fixture(autouse=True)
def instrumented():
    instrument.auto.install(include=["asyncio"])
    yield
    instrument.auto.uninstall()


class TestEventLoopLag:
    def test_a_blocked_loop_shows_the_block(self):
        """time.sleep(0.2) inside a coroutine: the largest lag is at least 0.2 s (the first sample
        is due as the loop starts, so it waits behind the whole block)."""

        async def main():
            time.sleep(0.2)
            await asyncio.sleep(0.15)
            return "done"

        with capture() as captured:
            assert "done" == asyncio.run(main())
        histogram = captured.histogram(LAG)
        assert histogram.count >= 2
        assert histogram.max >= 0.2

    def test_uvloop_is_sampled_too(self):
        """uvloop's loop (uvicorn's with uvloop installed): the same block shows the same lag."""
        uvloop = require_module("uvloop")

        async def main():
            time.sleep(0.2)
            await asyncio.sleep(0.15)

        with capture() as captured, asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
            runner.run(main())
        assert captured.histogram(LAG).max >= 0.2

    def test_sampler_cancelled_when_the_loop_stops(self):
        """After run_until_complete returns, no sampler callback is left scheduled on the loop."""
        loop = asyncio.new_event_loop()
        try:
            assert 3 == loop.run_until_complete(asyncio.sleep(0.25, 3))
            assert [] == [handle for handle in loop._scheduled if not handle.cancelled()]
        finally:
            loop.close()

    def test_uninstalled_records_nothing(self):
        """Without the integration, a loop is left alone."""
        instrument.auto.uninstall()
        with capture() as captured:
            asyncio.run(asyncio.sleep(0.15))
        assert [] == captured.find(LAG)
