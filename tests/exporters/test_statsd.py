"""statsd and dogstatsd: what a real StatsD server and a bare UDP receiver get."""

from __future__ import annotations

import math
import random
import socket
import uuid

import pytest

import instrument
from instrument._config import settings
from instrument.exporters.memory import MemoryExporter
from instrument.exporters.statsd import DogStatsdExporter, StatsdExporter
from instrument.testing import capture

from ..helpers import counter_total, require_binary
from .statsd_servers import EtsyStatsd, UdpReceiver, require_etsy_statsd

# Each value the server gets is within half a bucket (2**(1/128) - 1 = 0.543 %) of the
# value it stands for, plus rounding to 6 significant digits: the documented 0.55 %.
PERCENTILE_ERROR = 0.0055


@pytest.fixture
def export_to():
    """Configures instrument to export to the exporters given, only on flush(); restores it after."""
    instrument.flush(5.0)  # earlier tests' records go to earlier exporters

    def use(*exporters):
        instrument.configure(exporters=list(exporters), interval=3600.0, enabled=True)

    yield use
    instrument.flush(5.0)
    instrument.configure(
        exporters=[], interval=10.0, statsd_address=("127.0.0.1", 8125), statsd_max_datagram=1432
    )


def exporter_for(cls, address, max_datagram=1432):
    """An exporter made the way the registry makes it: from the configuration."""
    instrument.configure(statsd_address=address, statsd_max_datagram=max_datagram)
    return cls(settings.current)


@pytest.fixture
def etsy(tmp_path):
    """Etsy's statsd on free ports; skipped without node or the npm package, except in CI."""
    node = require_binary("node")
    require_etsy_statsd()
    server = EtsyStatsd(node, tmp_path)
    yield server
    server.close()


@pytest.fixture
def receiver():
    receiver = UdpReceiver()
    yield receiver
    receiver.close()


def settle(receiver):
    """Flush, then send a marker through the same socket; the datagrams that came before it.

    Datagrams from one socket to 127.0.0.1 arrive in order, so once the marker is in,
    so is everything sent before it.
    """
    instrument.flush(5.0)
    token = uuid.uuid4().hex
    instrument.count("statsd.test.marker", tags={"token": token})
    instrument.flush(5.0)
    return receiver.until(token.encode())


def lines_of(datagrams, prefix):
    """Every line in *datagrams* that starts with *prefix*, in order."""
    return [line for datagram in datagrams for line in datagram.decode().split("\n") if line.startswith(prefix)]


def etsy_upper(values, pct):
    """statsd's upper_<pct>: the value at rank round(pct / 100 * count) (lib/process_metrics.js)."""
    ordered = sorted(values)
    return ordered[math.floor(pct / 100 * len(ordered) + 0.5) - 1]


def nearest_rank(weighted, q):
    """The q-quantile (nearest rank) of ``(value, weight)`` pairs."""
    ordered = sorted(weighted)
    rank = max(1, math.ceil(q * sum(weight for _, weight in ordered)))
    seen = 0
    for value, weight in ordered:
        seen += weight
        if seen >= rank:
            return value
    raise AssertionError("rank beyond the count")


def parse_dogstatsd(line):
    """``(name, values, type, sample_rate, tags)`` of one DogStatsD line."""
    head, *fields = line.split("|")
    name, *values = head.split(":")
    rate = next((float(f[1:]) for f in fields if f.startswith("@")), 1.0)
    tags = next((f[1:] for f in fields if f.startswith("#")), "")
    return name, [float(v) for v in values], fields[0], rate, tags


def lognormal_seconds(n, seed):
    """*n* latencies in seconds, spread over three orders of magnitude, reproducibly."""
    rng = random.Random(seed)
    return [rng.lognormvariate(-5.0, 1.2) for _ in range(n)]


@pytest.mark.server("statsd")
class TestStatsdAtEtsyServer:
    def test_counters_are_exact_across_many_datagrams(self, etsy, export_to):
        """Counter totals at the server are exact when the lines need many datagrams."""
        export_to(exporter_for(StatsdExporter, etsy.address, max_datagram=512))

        @instrument.counted("statsd.test.calls")
        def call():
            pass

        for _ in range(1000):
            call()
        for i in range(150):
            instrument.count("statsd.test.items", i + 1, tags={"shard": i})
        datagrams = settle(etsy.repeated)
        live = etsy.management("counters")  # what the server holds now, asked on its management port
        counters = etsy.stop()["counters"]

        assert 1000 == live["statsd.test.calls"] == counters["statsd.test.calls"]
        assert {f"statsd.test.items.shard_{i}": i + 1 for i in range(150)} == {
            key: value for key, value in live.items() if key.startswith("statsd.test.items.")
        }
        assert {f"statsd.test.items.shard_{i}": i + 1 for i in range(150)} == {
            key: value for key, value in counters.items() if key.startswith("statsd.test.items.")
        }
        assert 0 == counters["statsd.bad_lines_seen"]
        assert len(datagrams) > 5
        assert 512 >= max(len(d) for d in datagrams)

    def test_timer_counts_exact_and_percentiles_within_the_bucket_error(self, etsy, export_to):
        """Timers arrive in milliseconds: exact count, min and max, percentiles within 0.55 %."""
        export_to(exporter_for(StatsdExporter, etsy.address))
        seconds = lognormal_seconds(1000, seed=7)
        with capture() as captured:

            @instrument.timed("statsd.test.handler")
            def handler():
                pass

            for _ in range(20):
                handler()
            for value in seconds:
                instrument.record("statsd.test.latency", value, unit="s")
        datagrams = settle(etsy.repeated)
        held = etsy.management("timers")["statsd.test.handler"]  # the values, in ms, each line carried
        timers = etsy.stop()["timer_data"]

        latency = timers["statsd.test.latency"]
        milliseconds = [value * 1000 for value in seconds]
        assert (1000, min(milliseconds), max(milliseconds)) == (latency["count"], latency["lower"], latency["upper"])
        for pct in (50, 90, 99):
            assert etsy_upper(milliseconds, pct) == pytest.approx(latency[f"upper_{pct}"], rel=PERCENTILE_ERROR)
        assert sum(milliseconds) / 1000 == pytest.approx(latency["mean"], rel=PERCENTILE_ERROR)
        timed = captured.one("statsd.test.handler").histogram
        handled = timers["statsd.test.handler"]
        assert (20, timed.min * 1000, timed.max * 1000) == (handled["count"], handled["lower"], handled["upper"])
        assert (timed.min * 1000, timed.max * 1000) == pytest.approx((min(held), max(held)))
        assert len(lines_of(datagrams, "statsd.test.latency:")) < 30  # many values per line

    def test_negative_gauges_are_set_not_subtracted(self, etsy, export_to):
        """A negative gauge goes as name:0|g then name:-N|g in one datagram, so the server holds -N."""
        export_to(exporter_for(StatsdExporter, etsy.address))
        instrument.gauge("statsd.test.level", 3)
        instrument.gauge("statsd.test.debt", -5.5)
        instrument.gauge("statsd.test.zero", 0.0)
        instrument.flush(5.0)
        instrument.gauge("statsd.test.level", -2)  # a bare "-2" would have made it 3 - 2 = 1
        datagrams = settle(etsy.repeated)
        gauges = etsy.stop()["gauges"]

        assert (-2, -5.5, 0) == (gauges["statsd.test.level"], gauges["statsd.test.debt"], gauges["statsd.test.zero"])
        assert any(b"statsd.test.level:0|g\nstatsd.test.level:-2|g" in d for d in datagrams)

    def test_names_and_tags_are_folded_and_sanitised(self, etsy, export_to):
        """Tags become .key_value parts sorted by key, sanitised as statsd does; / becomes -."""
        export_to(exporter_for(StatsdExporter, etsy.address))
        tags = {"route": "/users/{id}", "ver": 1.5, "Ok": True, "with space": "a b"}
        instrument.count("statsd.test/sanitise-me", 2, tags=tags)
        settle(etsy.repeated)
        counters = etsy.stop()["counters"]

        assert 2 == counters["statsd.test-sanitise-me.Ok_true.route_-users-id.ver_1_5.with_space_a_b"]

    def test_negative_histogram_values_are_bad_lines_at_etsy(self, etsy, export_to):
        """statsd rejects negative timer values (counted in bad_lines_seen); the others still count."""
        export_to(exporter_for(StatsdExporter, etsy.address))
        for value in (-4.0, 1.0, 2.0, 8.0):
            instrument.record("statsd.test.delta", value)
        settle(etsy.repeated)
        flushed = etsy.stop()

        delta = flushed["timer_data"]["statsd.test.delta"]
        assert (1, 3, 8) == (flushed["counters"]["statsd.bad_lines_seen"], delta["count"], delta["upper"])
        assert 1 == pytest.approx(delta["lower"], rel=PERCENTILE_ERROR)  # stands for 1: -4 was the minimum


class TestDogStatsdLines:
    def test_counters_and_gauges_carry_sorted_tags(self, receiver, export_to):
        """Counters are |c and gauges |g with their plain value, negative ones too, tags as |#k:v."""
        export_to(exporter_for(DogStatsdExporter, receiver.address))
        instrument.count("dog.test.requests", 3, tags={"route": "/users", "method": "GET"})
        instrument.gauge("dog.test.balance", -5, tags={"account": "a1"})
        instrument.gauge("dog.test.ratio", 0.5)
        lines = lines_of(settle(receiver), "dog.test.")

        assert [
            "dog.test.balance:-5|g|#account:a1",
            "dog.test.ratio:0.5|g",
            "dog.test.requests:3|c|#method:GET,route:/users",
        ] == sorted(lines)

    def test_unified_service_tags_from_dd_variables_or_the_resource(self, receiver, export_to, monkeypatch):
        """DD_ENV, DD_SERVICE and DD_VERSION (else the resource's attributes) and DD_TAGS tag every line."""
        monkeypatch.setenv("DD_ENV", "prod")
        monkeypatch.setenv("DD_TAGS", "team:payments region:eu")
        instrument.configure(resource={"service.name": "billing", "service.version": "1.4"})
        try:
            export_to(exporter_for(DogStatsdExporter, receiver.address))
            instrument.count("dog.test.tagged", 1, tags={"route": "/a"})
            lines = lines_of(settle(receiver), "dog.test.")
        finally:
            instrument.configure(resource={})
        assert ["dog.test.tagged:1|c|#env:prod,region:eu,route:/a,service:billing,team:payments,version:1.4"] == lines

    def test_names_and_tags_are_sanitised(self, receiver, export_to):
        """Names keep [A-Za-z0-9_.], tags also - / and (in values) :, anything else becomes _."""
        export_to(exporter_for(DogStatsdExporter, receiver.address))
        instrument.count("dog.test/odd-name", tags={"k,ey": "a|b c", "zone": "eu:west#1", "ok": True})
        lines = lines_of(settle(receiver), "dog.test")

        assert ["dog.test_odd_name:1|c|#k_ey:a_b_c,ok:true,zone:eu:west_1"] == lines

    def test_equal_values_become_one_weighted_distribution_line(self, receiver, export_to):
        """Min and max go as they are, the rest once with sample rate 1/n: counts are exact."""
        export_to(exporter_for(DogStatsdExporter, receiver.address))
        for _ in range(5):
            instrument.record("dog.test.size", 0.25, tags={"kind": "small"}, unit="By")
        lines = lines_of(settle(receiver), "dog.test.size")

        assert [
            "dog.test.size:0.25:0.25|d|#kind:small",
            "dog.test.size:0.25|d|@0.3333333333333333|#kind:small",
        ] == lines

    def test_timers_are_seconds_distributions_with_exact_weights(self, receiver, export_to):
        """Weights (int(1 / rate), as the agent reads them) add up to the count; percentiles within 0.55 %."""
        export_to(exporter_for(DogStatsdExporter, receiver.address))
        seconds = lognormal_seconds(2000, seed=11) + [0.004] * 700

        for value in seconds:
            instrument.record("dog.test.latency", value, unit="s")
        weighted = []
        for line in lines_of(settle(receiver), "dog.test.latency:"):
            name, values, kind, rate, tags = parse_dogstatsd(line)
            assert ("dog.test.latency", "d", "") == (name, kind, tags)
            weighted.extend((value, int(1 / rate)) for value in values)

        assert len(seconds) == sum(weight for _, weight in weighted)
        assert (min(seconds), max(seconds)) == (min(weighted)[0], max(weighted)[0])
        assert any(weight > 100 for _, weight in weighted)  # the 700 equal values: one line
        truth = [(value, 1) for value in seconds]
        for q in (0.5, 0.9, 0.99):
            assert nearest_rank(truth, q) == pytest.approx(nearest_rank(weighted, q), rel=PERCENTILE_ERROR)

    def test_sample_rates_survive_the_agents_truncation(self, receiver, export_to):
        """A weight whose 1/n does not round-trip (49) still reads back as exactly 49."""
        export_to(exporter_for(DogStatsdExporter, receiver.address))
        for _ in range(51):
            instrument.record("dog.test.batch", 7)
        lines = lines_of(settle(receiver), "dog.test.batch")

        (weighted,) = [line for line in lines if "@" in line]
        assert 49 == int(1 / parse_dogstatsd(weighted)[3])

    def test_lines_are_packed_whole_within_the_datagram_limit(self, receiver, export_to):
        """Datagrams hold whole lines up to the limit; a point with a longer line is dropped alone and counted."""
        export_to(exporter_for(DogStatsdExporter, receiver.address, max_datagram=200))
        for i in range(60):
            instrument.count("dog.test.packed", i + 1, tags={"n": i})
        for i in range(300):
            instrument.record("dog.test.spread", 1.5**i)  # 300 buckets: values packed, over many lines
        long_name = "dog.test.long." + "x" * 180
        instrument.count(long_name, tags={"t": "y" * 60})
        datagrams = settle(receiver)

        assert [] == [d for d in datagrams if long_name.encode() in d]
        assert 200 >= max(len(d) for d in datagrams)
        counted = lines_of(receiver.datagrams, "instrument.records.dropped:")  # counted as the marker went
        assert ["instrument.records.dropped:1|c|#exporter:dogstatsd,reason:unexportable"] == [
            line for line in counted if "unexportable" in line]
        packed = lines_of(datagrams, "dog.test.packed:")
        assert sorted(f"dog.test.packed:{i + 1}|c|#n:{i}" for i in range(60)) == sorted(packed)
        assert len([d for d in datagrams if b"dog.test.packed:" in d]) < 60
        spread = [parse_dogstatsd(line) for line in lines_of(datagrams, "dog.test.spread:")]
        assert 300 == sum(len(values) for _, values, _, _, _ in spread)
        assert all(len(values) > 1 for _, values, _, _, _ in spread)

    def test_ipv6_address(self, export_to):
        """statsd_address may be an IPv6 host."""
        try:
            receiver = UdpReceiver("::1")
        except OSError:
            pytest.skip("no IPv6 loopback here")
        try:
            export_to(exporter_for(DogStatsdExporter, receiver.address))
            instrument.count("dog.test.six")
            assert ["dog.test.six:1|c"] == lines_of(settle(receiver), "dog.test.six")
        finally:
            receiver.close()


class TestSendErrors:
    def test_a_refused_datagram_fails_the_export_but_the_rest_is_sent(self):
        """ECONNREFUSED (for an earlier datagram) raises after every datagram of the batch was tried."""
        port = _unused_udp_port()
        exporter = DogStatsdExporter(address=("127.0.0.1", port), max_datagram=64)
        with capture() as first:
            instrument.count("dog.test.lost")
        exporter.export(_batch(first.points))  # nobody listens: the kernel gets an ICMP back
        receiver = UdpReceiver(port=port)
        try:
            with capture() as second:
                for i in range(10):
                    instrument.count("dog.test.kept", tags={"n": i})
            with pytest.raises(OSError, match=r"1 send error\(s\) for 5 datagram\(s\).*refused"):
                exporter.export(_batch(second.points))  # two lines a datagram
            receiver.socket.settimeout(5.0)
            received = [receiver.socket.recv(65536) for _ in range(5)]
        finally:
            receiver.close()
            exporter.shutdown()

        assert sorted(f"dog.test.kept:1|c|#n:{i}" for i in range(10)) == sorted(lines_of(received, ""))

    def test_failed_sends_are_counted_in_export_failures(self, export_to):
        """A batch that met a send error counts in instrument.export.failures{exporter=statsd}."""
        memory = MemoryExporter()
        port = _unused_udp_port()
        export_to(exporter_for(StatsdExporter, ("127.0.0.1", port), max_datagram=64), memory)
        for attempt in range(3):
            instrument.count("statsd.test.unheard", tags={"attempt": attempt})
            instrument.flush(5.0)
        instrument.flush(5.0)  # exports the failure counted by the last one

        # The 2nd and 3rd flush start with the refusal of the one before; the 1st may fail too.
        assert 2 <= counter_total(memory, "instrument.export.failures", {"exporter": "statsd"})

    def test_export_after_shutdown_says_so(self):
        """shutdown() closes the socket; exporting afterwards is a clear error, shutting down again is not."""
        exporter = StatsdExporter(address=("127.0.0.1", _unused_udp_port()))
        exporter.shutdown()
        exporter.shutdown()
        with capture() as captured:
            instrument.count("statsd.test.late")
        with pytest.raises(RuntimeError, match="statsd exporter is shut down"):
            exporter.export(_batch(captured.points))


def _unused_udp_port():
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _batch(points):
    from instrument.exporters import Batch

    return Batch(1, 0.0, 1.0, points, len(points))
