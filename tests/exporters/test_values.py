"""Every value the API accepts reaches every exporter's real receiver, or is dropped alone.

Edges: integers beyond 64 bits in counters and gauges (OTLP's ``as_int`` is signed
64-bit: they go as doubles), a gauge of 10**300, and sums that overflow float range
(JSON and StatsD hold no infinity: such a point is dropped alone, counted and logged;
OTLP and Prometheus send it). Whatever happens to one point, the rest of its batch and
every later batch arrive.
"""

from __future__ import annotations

import math
import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

import instrument

from .receivers import Receiver

EDGES = textwrap.dedent("""
    import sys
    import instrument

    tags = {"run": sys.argv[1]}
    instrument.count("edge.big", 2**64, tags=tags)
    instrument.gauge("edge.huge", 10**300, tags=tags)
    for _ in range(2):
        instrument.record("edge.overflow", 1e308, tags=tags)
        instrument.count("edge.overflowing", 1e308, tags=tags)
    instrument.count("edge.first", tags=tags)
    instrument.flush(5.0)
    instrument.count("edge.later", tags=tags)
    instrument.flush(5.0)
""")

# Exporters whose wire format holds no infinity: the overflowed points are dropped there.
NO_INFINITY = {"jsonl", "http", "statsd", "dogstatsd"}


def test_edge_values_reach_the_receiver_and_poison_nothing(receiver: Receiver, tmp_path: Path) -> None:
    """Huge integers arrive as numbers; overflowed sums arrive or are dropped alone; later batches arrive."""
    script = tmp_path / "edges.py"
    script.write_text(EDGES)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("INSTRUMENT_", "OTEL_"))}
    env.update(INSTRUMENT_EXPORTERS=receiver.exporter, INSTRUMENT_INTERVAL="3600", **receiver.environment())
    result = subprocess.run([sys.executable, str(script), "edges"], env=env, capture_output=True, text=True,
                            timeout=60)
    assert 0 == result.returncode, result.stderr
    assert "failed" not in result.stderr

    deadline = time.monotonic() + 5
    while not receiver.received("edge.later") and time.monotonic() < deadline:
        time.sleep(0.05)
    assert {"edges"} == receiver.received("edge.first") == receiver.received("edge.later")
    assert float(2**64) in receiver.values("edge.big")["edges"]
    assert 1e300 in receiver.values("edge.huge")["edges"]
    flavour = receiver.exporter
    if flavour in NO_INFINITY:
        assert {} == receiver.values("edge.overflowing")
        assert "cannot send a point of 'edge.overflowing'" in result.stderr
    else:
        assert math.inf in receiver.values("edge.overflowing")["edges"]
        assert 2.0 in receiver.values("edge.overflow")["edges"]
    if flavour in ("jsonl", "http"):
        assert {} == receiver.values("edge.overflow")
        assert "cannot send a point of 'edge.overflow'" in result.stderr


class TestRefusedAtTheCall:
    """What no exporter could send is refused where it is recorded, naming the problem."""

    @pytest.mark.parametrize("value", [math.nan, math.inf, -math.inf])
    def test_non_finite_tag_values(self, value: float) -> None:
        with pytest.raises(ValueError, match=r"tag 'reason' of metric 'values\.tags' has the value .*must be finite"):
            instrument.count("values.tags", tags={"reason": value})

    def test_tag_integers_beyond_64_bits(self) -> None:
        with pytest.raises(ValueError, match=r"integer value beyond 64 bits.*pass it as a str"):
            instrument.count("values.tags", tags={"id": 2**63})

    def test_tag_text_with_a_lone_surrogate(self) -> None:
        with pytest.raises(ValueError, match=r"is not valid Unicode text"):
            instrument.count("values.tags", tags={"path": "caf\udce9"})

    def test_non_finite_values(self) -> None:
        for call in (instrument.count, instrument.gauge, instrument.record):
            with pytest.raises(ValueError, match="finite"):
                call(f"values.numbers.{call.__name__}", math.nan)
