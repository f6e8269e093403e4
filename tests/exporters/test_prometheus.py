"""prometheus: the scrape endpoint, its names and buckets, port clashes, forked workers
forwarding to one endpoint, and the real Prometheus server and gunicorn."""

from __future__ import annotations

import json
import logging
import multiprocessing
import os
import signal
import socket
import subprocess
import sys
import textwrap
import threading
import time
import urllib.error
import urllib.request
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

import instrument
from instrument._config import Config
from instrument._histogram import HistogramData
from instrument._model import Batch, Point
from instrument.exporters.memory import MemoryExporter
from instrument.exporters.prometheus import (
    DEFAULT_CLASSIC_BOUNDS,
    ENDPOINTS_VARIABLE,
    ForwardingError,
    PrometheusExporter,
)
from instrument.exporters.prometheus._frames import encode_frame
from instrument.exporters.prometheus._pull import LOCAL, Pulls
from instrument.testing import capture

from ..helpers import counter_total, free_port, require_binary, require_module
from .prometheus_support import (
    OPENMETRICS_ACCEPT,
    go_float,
    register_entry_point,
    samples,
    scrape,
)

LE_SECONDS = DEFAULT_CLASSIC_BOUNDS["s"]


def counter(name, value, tags=None, unit="", start=100.0):
    return Point(name, "counter", unit, tags or {}, start, start + 1, value=value)


def batch(*points):
    return Batch(1, 0.0, 1.0, list(points), len(points))


class TestTextFormat:
    def test_counter_is_cumulative_with_help_type_and_total(self, exporter):
        """Counters add up across exports into one _total sample with HELP and TYPE lines."""
        exporter.export(batch(counter("jobs.done", 3, {"queue": "mail"})))
        exporter.export(batch(counter("jobs.done", 4, {"queue": "mail"})))
        content_type, body = scrape(exporter.url)
        assert "text/plain; version=0.0.4; charset=utf-8" == content_type
        assert [
            "# HELP jobs_done_total jobs.done",
            "# TYPE jobs_done_total counter",
            'jobs_done_total{queue="mail"} 7',
        ] == body.splitlines()

    def test_counters_never_go_backwards_across_exports(self, endpoint):
        """Each scrape after an export shows a total at least as large as the one before."""
        seen = []
        for n in (1, 5, 0, 2):
            for _ in range(n):
                instrument.count("prom.monotonic")
            instrument.flush(5.0)
            seen.append(int(samples(scrape(endpoint.url)[1]).get("prom_monotonic_total", "0")))
        assert [1, 6, 6, 8] == seen

    def test_gauge_keeps_the_last_value(self, exporter):
        """A gauge shows the value of its latest point, and ratio units get a _ratio suffix."""
        exporter.export(batch(Point("disk.used", "gauge", "1", {}, 0.0, 1.0, value=0.25)))
        exporter.export(batch(Point("disk.used", "gauge", "1", {}, 1.0, 2.0, value=0.5)))
        assert {"disk_used_ratio": "0.5"} == samples(scrape(exporter.url)[1])

    @pytest.mark.parametrize(
        ("name", "kind", "unit", "expected"),
        [
            ("http.server.request.duration", "histogram", "s", "http_server_request_duration_seconds_count"),
            ("payload.size", "histogram", "By", "payload_size_bytes_count"),
            ("payload.bytes", "histogram", "By", "payload_bytes_count"),
            ("latency.seconds", "histogram", "s", "latency_seconds_count"),
            ("db.wait", "histogram", "ms", "db_wait_milliseconds_count"),
            ("requests", "counter", "{request}", "requests_total"),
            ("requests.total", "counter", "", "requests_total"),
            ("sent", "counter", "By", "sent_bytes_total"),
            ("sent.bytes.total", "counter", "By", "sent_bytes_total"),
            ("speed", "gauge", "m/s", "speed_meters_per_second"),
            ("rate", "gauge", "1/s", "rate_per_second"),
            ("queue-depth/now", "gauge", "", "queue_depth_now"),
            ("odd__name.", "gauge", "", "odd_name_"),
            ("utilization", "counter", "1", "utilization_total"),
        ],
    )
    def test_names_follow_opentelemetry_prometheus_rules(self, exporter, name, kind, unit, expected):
        """Dots and invalid characters become single underscores; unit and _total suffixes appear once."""
        if kind == "histogram":
            point = Point(name, kind, unit, {}, 0.0, 1.0, histogram=HistogramData(count=1, sum=1.0, min=1.0, max=1.0,
                                                                                   positive={-1: 1}))
        else:
            point = Point(name, kind, unit, {}, 0.0, 1.0, value=1)
        exporter.export(batch(point))
        assert expected in samples(scrape(exporter.url)[1])

    def test_label_names_are_sanitised_and_values_escaped(self, exporter):
        """Invalid label characters become underscores, colliding names are joined, values are escaped."""
        tags = {"path": 'C:\\dir "x"\nnext', "net.peer-name": "a", "net_peer_name": "b", "2xx": True, "ratio": 0.5}
        exporter.export(batch(counter("tagged", 1, tags)))
        line = next(line for line in scrape(exporter.url)[1].splitlines() if line.startswith("tagged_total"))
        expected = 'tagged_total{_2xx="true",net_peer_name="a;b",path="C:\\\\dir \\"x\\"\\nnext",ratio="0.5"} 1'
        assert expected == line

    def test_series_that_look_alike_are_served_as_one(self, exporter):
        """Tag sets that become the same labels are added up into one series, never a duplicate line."""
        exporter.export(batch(counter("alike", 1, {"net.peer": "a"}), counter("alike", 2, {"net_peer": "a"}),
                              counter("alike", 4, {"ok": True}), counter("alike", 8, {"ok": "true"})))
        assert {'alike_total{net_peer="a"}': "3", 'alike_total{ok="true"}': "12"} == samples(scrape(exporter.url)[1])

    def test_histogram_buckets_sum_and_count_are_exact(self, exporter):
        """Each le count is the number of recorded values <= le, boundaries included; +Inf is the count."""
        values = [-3, 0, 0.5, 1, 63, 64, 64.5, 100, 1024, 1025, 5000, 2**29, 1e12]
        with capture() as captured:
            for value in values:
                instrument.record("prom.exact.size", value, unit="By")
        exporter.export(batch(*captured.points))
        found = samples(scrape(exporter.url)[1])
        buckets = {key: int(value) for key, value in found.items() if key.startswith("prom_exact_size_bytes_bucket")}
        expected = {f'prom_exact_size_bytes_bucket{{le="{go_float(b)}"}}': sum(v <= b for v in values)
                    for b in DEFAULT_CLASSIC_BOUNDS["By"]}
        expected['prom_exact_size_bytes_bucket{le="+Inf"}'] = len(values)
        assert expected == buckets
        assert str(len(values)) == found["prom_exact_size_bytes_count"]
        assert sum(values) == float(found["prom_exact_size_bytes_sum"])

    def test_le_boundaries_are_fixed_per_unit(self, exporter):
        """Every seconds histogram has the same le set, from its first scrape on, whatever it recorded."""
        with capture() as captured:
            instrument.record("prom.le.narrow", 0.001, unit="s")
            instrument.record("prom.le.wide", 1e-9, unit="s")
        exporter.export(batch(*captured.points))
        first = _le_values(scrape(exporter.url)[1])
        with capture() as captured:
            instrument.record("prom.le.narrow", 500.0, unit="s")
        exporter.export(batch(*captured.points))
        second = _le_values(scrape(exporter.url)[1])
        expected = [go_float(b) for b in LE_SECONDS] + ["+Inf"]
        assert {"prom_le_narrow_seconds": expected, "prom_le_wide_seconds": expected} == first == second

    def test_classic_buckets_are_configured_per_metric_or_per_unit(self):
        """classic_buckets: a metric's own boundaries, else its unit's, else the default."""
        configured = Config(prometheus_address=("127.0.0.1", 0),
                            classic_buckets={"prom.slo": (0.1, 0.3), "unit:By": (1024.0,)})
        created = PrometheusExporter(configured)
        try:
            with capture() as captured:
                for value in (0.05, 0.2, 0.5):
                    instrument.record("prom.slo", value, unit="s")
                    instrument.record("prom.other", value, unit="s")
                instrument.record("prom.payload", 2000, unit="By")
            created.export(batch(*captured.points))
            found = _le_values(scrape(created.url)[1])
            buckets = samples(scrape(created.url)[1])
        finally:
            created.shutdown()
        assert {"prom_slo_seconds": ["0.1", "0.3", "+Inf"], "prom_payload_bytes": ["1024.0", "+Inf"],
                "prom_other_seconds": [go_float(b) for b in LE_SECONDS] + ["+Inf"]} == found
        assert ["1", "2", "3"] == [buckets[f'prom_slo_seconds_bucket{{le="{le}"}}'] for le in ("0.1", "0.3", "+Inf")]

    def test_timers_are_histograms_in_seconds(self, endpoint):
        """A timer shows as a _seconds histogram with exact count."""
        for _ in range(3):
            with instrument.timer("prom.timer.work"):
                pass
        instrument.flush(5.0)
        body = scrape(endpoint.url)[1]
        assert "# TYPE prom_timer_work_seconds histogram" in body.splitlines()
        assert "3" == samples(body)["prom_timer_work_seconds_count"]

    def test_clashing_names_keep_one_metric_and_warn(self, exporter, caplog):
        """Two metrics with one Prometheus name: the first by name is served, the other left out with a warning."""
        exporter.export(batch(counter("clash.a", 1), counter("clash_a", 2)))
        with caplog.at_level(logging.WARNING, logger="instrument"):
            found = samples(scrape(exporter.url)[1])
        assert {"clash_a_total": "1"} == found
        assert any("'clash_a'" in r.getMessage() and "same Prometheus name" in r.getMessage() for r in caplog.records)

    def test_output_passes_promtool(self, exporter):
        """promtool, Prometheus' own linter, accepts the text format."""
        promtool = require_binary("promtool")
        with capture() as captured:
            instrument.count("prom.lint.requests", 2, tags={"method": "GET"})
            instrument.record("prom.lint.latency", 0.25, unit="s")
            instrument.gauge("prom.lint.depth", 3)
        exporter.export(batch(*captured.points))
        result = subprocess.run([promtool, "check", "metrics"], input=scrape(exporter.url)[1],
                                capture_output=True, text=True, timeout=30)
        assert (0, "") == (result.returncode, result.stdout + result.stderr)

    def test_other_paths_are_not_found(self, exporter):
        """Only /metrics is served."""
        with pytest.raises(urllib.error.HTTPError) as raised:
            scrape(exporter.url.replace("/metrics", "/"))
        assert 404 == raised.value.code

    def test_gzip_when_asked(self, exporter):
        """A scraper accepting gzip gets the same exposition compressed."""
        exporter.export(batch(counter("zipped", 9)))
        assert scrape(exporter.url)[1] == scrape(exporter.url, gzipped=True)[1]


class TestOpenMetrics:
    def test_negotiated_by_the_accept_header(self, exporter):
        """Asked for OpenMetrics, the endpoint answers OpenMetrics 1.0 ending in # EOF."""
        exporter.export(batch(counter("om.jobs", 2, {"q": "a"}, unit="s", start=1700000000.5)))
        content_type, body = scrape(exporter.url, accept=OPENMETRICS_ACCEPT)
        assert "application/openmetrics-text; version=1.0.0; charset=utf-8" == content_type
        assert [
            "# HELP om_jobs_seconds om.jobs (s)",
            "# TYPE om_jobs_seconds counter",
            "# UNIT om_jobs_seconds seconds",
            'om_jobs_seconds_total{q="a"} 2',
            'om_jobs_seconds_created{q="a"} 1700000000.5',
            "# EOF",
        ] == body.splitlines()

    def test_created_stays_when_a_worker_reports_an_earlier_start(self, exporter):
        """A series' _created is its first start: a later point starting earlier (a worker's
        flush-shortened interval) would make OpenMetrics scrapers see a reset."""
        exporter.export(batch(counter("om.started", 1, start=1700000100.0)))
        exporter.export(batch(counter("om.started", 1, start=1700000050.0)))
        found = samples(scrape(exporter.url, accept=OPENMETRICS_ACCEPT)[1])
        assert ("2", "1700000100") == (found["om_started_total"], found["om_started_created"].rstrip("0").rstrip("."))

    def test_text_format_unless_openmetrics_is_preferred(self, exporter):
        """Plain scrapers, and those preferring text/plain, get the text format."""
        for accept in (None, "*/*", "text/plain;version=0.0.4", "application/openmetrics-text;q=0.1,text/plain"):
            assert scrape(exporter.url, accept=accept)[0].startswith("text/plain; version=0.0.4")

    def test_histogram_has_created_and_no_sum_after_negative_values(self, exporter):
        """OpenMetrics histograms carry _created, and leave _sum out once a negative value was recorded."""
        with capture() as captured:
            instrument.record("om.temperature", -2.5)
            instrument.record("om.temperature", 4.0)
            instrument.record("om.size", 4.0, unit="By")
        exporter.export(batch(*captured.points))
        found = samples(scrape(exporter.url, accept=OPENMETRICS_ACCEPT)[1])
        assert {"om_temperature_count", "om_temperature_created", "om_size_bytes_sum"} <= set(found)
        assert "om_temperature_sum" not in found
        assert "1.5" == samples(scrape(exporter.url)[1])["om_temperature_sum"]  # the text format has it


class TestPortTaken:
    def test_one_warning_and_the_other_exporters_carry_on(self, port_holder, caplog):
        """An address taken by another process gives one warning naming it; nothing fails, others get data."""
        with caplog.at_level(logging.WARNING, logger="instrument"):
            first = PrometheusExporter(address=("127.0.0.1", port_holder))
            second = PrometheusExporter(address=("127.0.0.1", port_holder))
        warnings = [r.getMessage() for r in caplog.records if r.name == "instrument"]
        assert 1 == len(warnings)
        assert f"127.0.0.1:{port_holder}" in warnings[0] and "already in use" in warnings[0]
        assert ("inert", "inert") == (first.role, second.role)
        memory = MemoryExporter()
        instrument.flush(5.0)
        instrument.configure(exporters=[first, memory], interval=3600.0)
        try:
            instrument.count("prom.taken.requests", 5)
            assert instrument.flush(5.0)
        finally:
            instrument.configure(exporters=[])
        assert 5 == counter_total(memory, "prom.taken.requests")
        assert 0 == counter_total(memory, "instrument.export.failures", {"exporter": "prometheus"})

    def test_second_instrumented_process_keeps_running(self, exporter, tmp_path):
        """A second process configured for the same address warns once and exports to its other exporters."""
        register_entry_point(tmp_path)
        out = tmp_path / "m.jsonl"
        host, port = exporter.address
        inherited = {k: v for k, v in os.environ.items() if k != ENDPOINTS_VARIABLE}  # not started by us
        env = {
            **inherited,
            "PYTHONPATH": os.pathsep.join([str(tmp_path), os.environ.get("PYTHONPATH", "")]),
            "INSTRUMENT_EXPORTERS": "prometheus,jsonl",
            "INSTRUMENT_PROMETHEUS_ADDRESS": f"{host}:{port}",
            "INSTRUMENT_JSONL_PATH": str(out),
        }
        code = "import instrument; instrument.count('second.process'); print('alive')"
        result = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=60)
        assert (0, "alive\n") == (result.returncode, result.stdout), result.stderr
        warnings = [line for line in result.stderr.splitlines() if "cannot listen" in line]
        assert 1 == len(warnings), result.stderr
        assert f"{host}:{port}" in warnings[0]
        assert '"name":"second.process"' in out.read_text()


class TestSameProcess:
    def test_configuring_again_keeps_the_endpoint_and_its_totals(self, caplog):
        """A new exporter for the address this process serves shares the endpoint: no clash, totals go on."""
        port = free_port()
        first = PrometheusExporter(address=("127.0.0.1", port))
        first.export(batch(counter("same.process", 2)))
        with caplog.at_level(logging.WARNING, logger="instrument"):
            second = PrometheusExporter(address=("127.0.0.1", port))
        first.shutdown()
        second.export(batch(counter("same.process", 3)))
        try:
            assert "endpoint" == second.role
            assert [] == [r for r in caplog.records if r.name == "instrument"]
            assert "5" == samples(scrape(second.url)[1])["same_process_total"]
        finally:
            second.shutdown()
        with pytest.raises(OSError):
            scrape(second.url)


class SteppedWorker:
    """A forked worker that runs *steps* one at a time, the first at once and each next one
    when the parent says `go`, reporting each `done`; it stays alive, unflushed, until the
    block ends."""

    def __init__(self, *steps):
        self._done, self._go, self._steps = os.pipe(), os.pipe(), len(steps)
        self.pid = os.fork()
        if self.pid == 0:
            code = 1
            try:
                for step in steps:
                    step()
                    os.write(self._done[1], b"r")
                    os.read(self._go[0], 1)
                code = 0
            finally:
                os._exit(code)

    def done(self):
        assert b"r" == os.read(self._done[0], 1)

    def go(self):
        os.write(self._go[1], b"g")

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        os.write(self._go[1], b"g" * self._steps)
        os.waitpid(self.pid, 0)


class TestRuntimeMetrics:
    def test_semantic_convention_and_prometheus_client_names(self, endpoint):
        """The process's metrics show under OpenTelemetry's names and prometheus_client's defaults."""
        assert instrument.flush(5.0)
        found = samples(scrape(endpoint.url)[1])
        for name in ('process_cpu_time_seconds_total{cpu_mode="user"}', "process_memory_usage_bytes",
                     'cpython_gc_collections_total{cpython_gc_generation="0"}', "process_cpu_seconds_total",
                     "process_resident_memory_bytes", "process_virtual_memory_bytes", "process_open_fds",
                     "process_max_fds", "process_start_time_seconds", 'python_gc_collections_total{generation="2"}',
                     'python_gc_objects_collected_total{generation="0"}'):
            assert float(found[name]) >= 0, name
        assert abs(float(found["process_start_time_seconds"]) - _started()) < 5
        info = next(key for key in found if key.startswith("python_info{"))
        assert f'major="{sys.version_info[0]}"' in info and "1" == found[info]

    def test_memory_adds_up_over_the_live_workers(self, endpoint):
        """Resident memory is summed over the processes still running: a live worker adds its own."""
        assert instrument.flush(5.0)
        alone = float(samples(scrape(endpoint.url)[1])["process_resident_memory_bytes"])
        with SteppedWorker(lambda: instrument.flush(5.0)) as worker:
            worker.done()
            together = float(samples(scrape(endpoint.url)[1])["process_resident_memory_bytes"])
        after = float(samples(scrape(endpoint.url)[1])["process_resident_memory_bytes"])
        assert (True, True) == (together > 1.5 * alone, after < 1.5 * alone), (alone, together, after)


def _started():
    """When this process started (Unix time): now, less the system's uptime, plus the process's
    start in seconds after boot (/proc)."""
    with open("/proc/self/stat") as stat:
        ticks = int(stat.read().rpartition(")")[2].split()[19])
    with open("/proc/uptime") as uptime:
        return time.time() - float(uptime.read().split()[0]) + ticks / os.sysconf("SC_CLK_TCK")


class TestResource:
    def test_target_info_and_resource_labels(self, monkeypatch):
        """The resource is target_info's labels; prometheus_resource_labels puts some on every series too."""
        monkeypatch.setenv("OTEL_RESOURCE_ATTRIBUTES", "team=payments")
        created = PrometheusExporter(Config(
            prometheus_address=("127.0.0.1", 0), resource={"service.name": "billing", "service.version": "1.4"},
            prometheus_resource_labels=("service.name", "not.set"),
        ))
        try:
            created.export(batch(counter("prom.resourced", 2, {"route": "/a"})))
            found = samples(scrape(created.url)[1])
        finally:
            created.shutdown()
        assert "1" == found['target_info{service_name="billing",service_version="1.4",team="payments"}']
        assert "2" == found['prom_resourced_total{route="/a",service_name="billing"}']

    def test_no_target_info_without_a_resource(self, exporter):
        """Nothing set, no target_info (Prometheus' own job and instance labels say where from)."""
        exporter.export(batch(counter("prom.unresourced", 1)))
        assert [] == [key for key in samples(scrape(exporter.url)[1]) if key.startswith("target_info")]


class TestPulls:
    def test_a_forked_child_sees_the_scrape_counter_move(self):
        """The counter lives in memory shared with forked children: a scrape after the fork is seen there."""
        pulls = Pulls()
        ready, seen = os.pipe(), os.pipe()
        pid = os.fork()
        if pid == 0:
            try:
                os.write(ready[1], b"r")
                deadline = time.monotonic() + 10
                while pulls.generation() == 0 and time.monotonic() < deadline:
                    time.sleep(0.01)
                os.write(seen[1], str(pulls.generation()).encode())
            finally:
                os._exit(0)
        assert b"r" == os.read(ready[0], 1)
        pulls.request()
        assert b"1" == os.read(seen[0], 10)
        os.waitpid(pid, 0)

    def test_a_scrape_waits_for_the_sources_that_answer_and_not_for_the_gone(self):
        """wait() returns once every source delivered after the request; a forgotten one is not waited for."""
        pulls = Pulls()
        pulls.delivered("worker-1")
        pulls.delivered("worker-2")
        since = pulls.request()
        answering = threading.Timer(0.05, lambda: (pulls.delivered("worker-1"), pulls.delivered(LOCAL),
                                                   pulls.forget("worker-2")))
        answering.start()
        assert pulls.wait(since, [LOCAL, "worker-1", "worker-2"], time.monotonic() + 10)
        assert not pulls.wait(pulls.request(), [LOCAL], time.monotonic() + 0.05)  # nobody answers: gives up


class TestLiveScrapes:
    def test_a_scrape_shows_what_workers_recorded_without_a_flush(self, endpoint):
        """With hour-long intervals and no flush, a scrape soon shows what the endpoint's process
        and a running forked worker recorded (both send live batches every live_interval)."""
        instrument.count("prom.live.records", 2, tags={"who": "parent"})
        with SteppedWorker(lambda: instrument.count("prom.live.records", 5, tags={"who": "worker"})) as worker:
            worker.done()  # the worker stays alive, unflushed, until the parent has seen its records
            deadline = time.monotonic() + 10.0
            found = {}
            while time.monotonic() < deadline:
                found = samples(scrape(endpoint.url)[1])
                if found.get('prom_live_records_total{who="worker"}') == "5":
                    break
                time.sleep(0.05)
        assert ("2", "5") == (
            found.get('prom_live_records_total{who="parent"}'), found.get('prom_live_records_total{who="worker"}')
        )

    def test_workers_forward_when_a_scrape_asks_not_before(self, endpoint):
        """Between scrapes a connected worker keeps its records (no forwarding every tick); a
        scrape asks every process through the shared counter and shows what they hand over."""
        hello = lambda: instrument.count("prom.pulled.hello")  # noqa: E731 (starts the worker's collector: it connects)
        with SteppedWorker(hello, lambda: instrument.count("prom.pulled", 3)) as worker:
            worker.done()
            deadline = time.monotonic() + 10
            while not any(p.name == "prom.pulled.hello" for p in endpoint._endpoint.cumulative.points()):
                assert time.monotonic() < deadline, "the worker never connected"
                time.sleep(0.05)
            worker.go()
            worker.done()
            time.sleep(0.5)  # five live_interval periods: the worker looks, nobody has asked
            held = [p.name for p in endpoint._endpoint.cumulative.points() if p.name == "prom.pulled"]
            shown = samples(scrape(endpoint.url)[1]).get("prom_pulled_total")
        assert ([], "3") == (held, shown)


class TestFork:
    def test_children_and_grandchildren_add_up_at_the_parent(self, endpoint):
        """Records of forked children and a grandchild show up exactly at the parent's endpoint."""
        instrument.count("prom.fork.records", 1, tags={"who": "parent"})
        instrument.flush(5.0)
        children = []
        for i in range(3):
            pid = os.fork()
            if pid == 0:
                code = 1
                try:
                    for _ in range(100):
                        instrument.count("prom.fork.records", tags={"who": "child"})
                    if i == 0:
                        grandchild = os.fork()
                        if grandchild == 0:
                            try:
                                instrument.count("prom.fork.records", 7, tags={"who": "grandchild"})
                                instrument.flush(5.0)
                            finally:
                                os._exit(0)
                        os.waitpid(grandchild, 0)
                    code = 0 if instrument.flush(5.0) and endpoint.role == "forwarder" else 2
                finally:
                    os._exit(code)
            children.append(pid)
        assert [0, 0, 0] == [os.waitpid(pid, 0)[1] for pid in children]
        found = samples(scrape(endpoint.url)[1])
        assert {"parent": "1", "child": "300", "grandchild": "7"} == {
            who: found[f'prom_fork_records_total{{who="{who}"}}'] for who in ("parent", "child", "grandchild")
        }
        assert [] == [k for k in found if k.startswith("instrument_export_failures") and "prometheus" in k]

    def test_multiprocessing_fork_pool_adds_up_at_the_parent(self, endpoint):
        """Every task's record of a fork Pool reaches the parent's endpoint, flushed at worker exit."""
        pool = multiprocessing.get_context("fork").Pool(3)
        try:
            assert list(range(300)) == pool.map(_pool_task, range(300), chunksize=7)
        finally:
            pool.close()
            pool.join()
        assert "300" == samples(scrape(endpoint.url)[1])["prom_pool_tasks_total"]

    def test_requests_in_progress_are_summed_over_the_live_workers(self, endpoint):
        """http.server.active_requests is each worker's share: the endpoint shows the sum over the
        processes still running, and a worker that exits (or is killed mid-request) stops counting."""
        from instrument.integrations.wsgi._active import active_requests

        active = active_requests("GET", "http")
        series = 'http_server_active_requests{http_request_method="GET",url_scheme="http"}'
        active.enter()  # the endpoint's own process: 1
        ready_r, ready_w = os.pipe()
        go_r, go_w = os.pipe()
        children = []
        for busy in (2, 3):
            pid = os.fork()
            if pid == 0:
                code = 1
                try:
                    for _ in range(busy - 1):  # the parent's request is inherited: busy in all
                        active.enter()
                    code = 0 if instrument.flush(5.0) else 2
                    os.write(ready_w, b"x")
                    os.read(go_r, 1)
                finally:
                    os._exit(code)
            children.append(pid)
        try:
            assert b"xx" == os.read(ready_r, 1) + os.read(ready_r, 1)
            instrument.flush(5.0)
            assert "6" == samples(scrape(endpoint.url)[1])[series]
        finally:
            os.write(go_w, b"xx")
            assert [0, 0] == [os.waitpid(pid, 0)[1] for pid in children]
        assert "1" == samples(scrape(endpoint.url)[1])[series]
        active.leave()
        instrument.flush(5.0)
        assert "0" == samples(scrape(endpoint.url)[1])[series]

    def test_workers_reach_the_endpoint_through_no_file(self, endpoint):
        """The forwarding socket lives in Linux's abstract namespace: no path on disk, nothing
        left behind (prometheus_client's multiprocess mode leaves a file per worker pid)."""
        address = endpoint._endpoint.forward_address
        assert address.startswith("\0")
        with open("/proc/net/unix") as table:
            paths = [line.split()[-1] for line in table.read().splitlines()[1:] if len(line.split()) >= 8]
        assert "@" + address[1:] in paths
        assert not any("instrument-prometheus" in path for path in paths if path.startswith("/"))

    def test_child_neither_serves_nor_keeps_the_port(self, endpoint):
        """A child holds no listening socket: once the parent stops, the port is free and forwarding fails fast."""
        read_end, write_end = os.pipe()
        pid = os.fork()
        if pid == 0:
            code = 1
            try:
                os.close(write_end)
                os.read(read_end, 1)  # the parent has stopped its endpoint
                start = time.monotonic()
                try:
                    endpoint.export(batch(counter("prom.orphan", 1)))
                except ForwardingError:
                    code = 0 if time.monotonic() - start < 5 else 3
            finally:
                os._exit(code)
        os.close(read_end)
        host, port = endpoint.address
        endpoint.shutdown()
        with socket.socket() as probe:
            probe.bind((host, port))  # EADDRINUSE if the child still held the listening socket
        os.write(write_end, b"x")
        os.close(write_end)
        assert 0 == os.waitpid(pid, 0)[1]

    def test_exporter_created_in_a_child_forwards(self, endpoint):
        """A child configuring the exporter for its parent's address forwards to it instead of clashing."""
        pid = os.fork()
        if pid == 0:
            code = 1
            try:
                created = PrometheusExporter(address=endpoint.address)
                created.export(batch(counter("prom.child.created", 4)))
                code = 0 if created.role == "forwarder" else 2
            finally:
                os._exit(code)
        assert 0 == os.waitpid(pid, 0)[1]
        assert "4" == samples(scrape(endpoint.url)[1])["prom_child_created_total"]


    def test_a_malformed_frame_is_refused_and_the_endpoint_carries_on(self, exporter, caplog):
        """A frame that is not the JSON wire format gets no acknowledgement; later frames are folded."""
        address = exporter._endpoint.forward_address
        with caplog.at_level(logging.ERROR, logger="instrument"), socket.socket(socket.AF_UNIX) as bad:
            bad.settimeout(5)
            bad.connect(address)
            bad.sendall(b"\x00\x00\x00\x05notjs")
            assert b"" == bad.recv(1)
        with socket.socket(socket.AF_UNIX) as good:
            good.settimeout(5)
            good.connect(address)
            good.sendall(encode_frame([counter("prom.wire", 3)]))
            assert b"\x06" == good.recv(1)
        assert "3" == samples(scrape(exporter.url)[1])["prom_wire_total"]
        assert any("malformed frame" in r.getMessage() for r in caplog.records)


def _in_child(work) -> int:
    """Run *work* in a forked child; its exit status: 0 if it returned True, 1 if it raised, else 2."""
    pid = os.fork()
    if pid == 0:
        code = 1
        try:
            code = 0 if work() else 2
        finally:
            os._exit(code)
    return os.waitpid(pid, 0)[1] >> 8


class TestWireFormat:
    def test_frames_hold_points_in_the_jsonl_codec_without_quantiles(self):
        """A frame is a length and {"v": 2, "points": [...]}, each point as Point.as_dict writes it, quantiles aside."""
        point = Point("prom.codec", "histogram", "s", {"a": "b"}, 1.0, 2.0, histogram=HistogramData(
            count=2, sum=3.0, min=1.0, max=2.0, positive={-1: 1, 63: 1}))
        frame = encode_frame([point])
        data = json.loads(frame[4:])
        assert len(frame) - 4 == int.from_bytes(frame[:4], "big")
        assert {"v": 2, "points": [point.as_dict(quantiles=False)]} == data
        assert not {"p50", "p90", "p99", "p999"} & set(data["points"][0])

    def test_a_frame_of_another_version_is_refused_and_never_folded(self, exporter, caplog):
        """A version 1 frame (another instrument's worker) gets no acknowledgement, a log line saying why,
        and none of its points; frames of this version are folded as before."""
        old = {"v": 1, "points": [{"name": "prom.old", "kind": "counter", "unit": "", "tags": {},
                                   "start_time": 1.0, "end_time": 2.0, "value": 5}]}
        payload = json.dumps(old).encode()
        address = exporter._endpoint.forward_address
        with caplog.at_level(logging.ERROR, logger="instrument"), socket.socket(socket.AF_UNIX) as worker:
            worker.settimeout(5)
            worker.connect(address)
            worker.sendall(len(payload).to_bytes(4, "big") + payload)
            assert b"" == worker.recv(1)
        refused = [r.getMessage() for r in caplog.records if "refused metrics from worker" in r.getMessage()]
        assert 1 == len(refused)
        assert "a frame of version 1; this endpoint reads version 2" in refused[0]
        assert "another version of instrument" in refused[0]
        exporter.export(batch(counter("prom.new", 1)))
        found = samples(scrape(exporter.url)[1])
        assert "prom_old_total" not in found
        assert "1" == found["prom_new_total"]

    def test_a_worker_whose_frames_are_refused_counts_a_failure(self, exporter):
        """The worker's export raises ForwardingError (counted in instrument.export.failures) when the
        endpoint refuses its frame version."""
        from instrument.exporters.prometheus import _frames

        def work():
            _frames.VERSION = 1  # this child speaks another version
            try:
                exporter.export(batch(counter("prom.refused", 1)))
            except ForwardingError as exc:
                return "no acknowledgement" in str(exc)
            return False

        assert 0 == _in_child(work)
        assert "prom_refused_total" not in samples(scrape(exporter.url)[1])

    def test_a_sum_beyond_float_range_reaches_the_endpoint(self, exporter):
        """A worker's histogram whose sum overflowed to infinity (values near the largest float) is
        forwarded and shown with _sum +Inf, its counts exact; so is a float counter that overflowed, and
        an integer counter beyond float range arrives whole."""
        def work():
            with capture() as captured:
                instrument.record("prom.huge", 1e308)
                instrument.record("prom.huge", 1.5e308)
                instrument.count("prom.overflowed", 1e308)
                instrument.count("prom.overflowed", 1e308)
                instrument.count("prom.many", 10**308)
                instrument.count("prom.many", 10**308)
            exporter.export(batch(*captured.points))
            return exporter.role == "forwarder"

        assert 0 == _in_child(work)
        found = samples(scrape(exporter.url)[1])
        assert "+Inf" == found["prom_huge_sum"]
        assert "2" == found["prom_huge_count"]
        assert "2" == found['prom_huge_bucket{le="+Inf"}']
        assert "+Inf" == found["prom_overflowed_total"]
        assert str(2 * 10**308) == found["prom_many_total"]


EXEC_POOL = textwrap.dedent("""
    import multiprocessing, sys, urllib.request
    import instrument

    def task(i):
        instrument.count("prom.exec.tasks")
        return i

    if __name__ == "__main__":
        instrument.count("prom.exec.tasks")
        pool = multiprocessing.get_context(sys.argv[1]).Pool(2)
        assert list(range(200)) == pool.map(task, range(200), chunksize=9)
        pool.close()
        pool.join()
        instrument.flush(5.0)
        with urllib.request.urlopen(sys.argv[2], timeout=10) as response:
            sys.stdout.write(response.read().decode())
""")


class TestExecutedDescendants:
    """Processes started by exec inherit no objects: they find the endpoint through the environment."""

    @pytest.mark.parametrize("method", ["spawn", "forkserver"])
    def test_multiprocessing_pool_workers_add_up_at_the_parent(self, tmp_path, method):
        port = free_port()
        script = tmp_path / "pool.py"
        script.write_text(EXEC_POOL)
        env = {k: v for k, v in os.environ.items() if not k.startswith(("INSTRUMENT_", "_INSTRUMENT_"))}
        env.update(INSTRUMENT_EXPORTERS="prometheus", INSTRUMENT_PROMETHEUS_ADDRESS=f"127.0.0.1:{port}")
        result = subprocess.run(
            [sys.executable, str(script), method, f"http://127.0.0.1:{port}/metrics"],
            env=env, capture_output=True, text=True, timeout=120,
        )
        assert 0 == result.returncode, result.stderr
        assert "cannot listen" not in result.stderr
        found = samples(result.stdout)
        assert "201" == found["prom_exec_tasks_total"]
        assert [] == [k for k in found if k.startswith("instrument_export_failures")]

    def test_a_python_subprocess_forwards_to_the_parent(self, endpoint):
        host, port = endpoint.address
        env = {k: v for k, v in os.environ.items() if not k.startswith("INSTRUMENT_")}
        env.update(INSTRUMENT_EXPORTERS="prometheus", INSTRUMENT_PROMETHEUS_ADDRESS=f"{host}:{port}")
        code = "import instrument; instrument.count('prom.subprocess', 6)"
        result = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=60)
        assert (0, "") == (result.returncode, result.stderr)
        assert "6" == samples(scrape(endpoint.url)[1])["prom_subprocess_total"]

    def test_a_stopped_endpoints_entry_is_skipped(self):
        """The variable is only written when an endpoint starts; a child finds the stopped one
        no longer listening and serves the port itself."""
        port = free_port()
        created = PrometheusExporter(address=("127.0.0.1", port))
        entries = os.environ[ENDPOINTS_VARIABLE].split(";")
        assert any(e.startswith(f"{os.getpid()},") and e.endswith(f",{port},127.0.0.1") for e in entries)
        created.shutdown()
        env = {k: v for k, v in os.environ.items() if not k.startswith("INSTRUMENT_")}
        env.update(INSTRUMENT_EXPORTERS="prometheus", INSTRUMENT_PROMETHEUS_ADDRESS=f"127.0.0.1:{port}")
        code = (
            "from instrument._runtime import RUNTIME; RUNTIME.prepare(); "
            "print([w.exporter.role for w in RUNTIME.pipeline._workers])"
        )
        result = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=60)
        assert (0, "['endpoint']\n") == (result.returncode, result.stdout), result.stderr

    def test_an_entry_of_a_process_that_is_not_an_ancestor_is_ignored(self, port_holder, monkeypatch, caplog):
        """Copying the environment does not make a process a worker: it binds, or warns, as any other."""
        with socket.socket(socket.AF_UNIX) as listener:
            listener.bind("\0instrument-test-foreign")
            listener.listen()
            other = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
            try:
                monkeypatch.setenv(ENDPOINTS_VARIABLE, f"{other.pid},instrument-test-foreign,{port_holder},127.0.0.1")
                with caplog.at_level(logging.WARNING, logger="instrument"):
                    created = PrometheusExporter(address=("127.0.0.1", port_holder))
            finally:
                other.kill()
                other.wait()
        assert "inert" == created.role
        assert any("cannot listen" in r.getMessage() for r in caplog.records)


def _pool_task(i):
    instrument.count("prom.pool.tasks")
    return i


@pytest.mark.once
class TestPrometheusServer:
    def test_prometheus_scrapes_counters_and_histograms(self, endpoint, prometheus_server):
        """The real Prometheus server ingests the endpoint (OpenMetrics) with exact values."""
        for value in (0.25, 0.5, 3.0):
            instrument.record("prom.real.latency", value, tags={"route": "/x"}, unit="s")
        instrument.count("prom.real.requests", 42, tags={"route": "/x"})
        instrument.flush(5.0)
        host, port = endpoint.address
        server = prometheus_server(f"{host}:{port}")
        server.wait_for_value('prom_real_requests_total{route="/x"}', 42)
        server.wait_for_value('prom_real_latency_seconds_bucket{route="/x",le="0.5"}', 2)
        server.wait_for_value('prom_real_latency_seconds_count{route="/x"}', 3)
        server.wait_for_value('prom_real_latency_seconds_sum{route="/x"}', 3.75)
        server.wait_for_value('up{job="instrument"}', 1)

    def test_gunicorn_workers_recycled_add_up_exactly(self, tmp_path, prometheus_server):
        """Under gunicorn with recycled workers, Prometheus sees every request exactly once at one endpoint."""
        require_module("gunicorn")
        site = tmp_path / "site"
        site.mkdir()
        register_entry_point(site)
        (site / "app.py").write_text(textwrap.dedent("""
            import os
            import instrument

            def app(environ, start_response):
                instrument.count("app.requests")
                start_response("200 OK", [("Content-Type", "text/plain")])
                return [str(os.getpid()).encode()]
        """))
        # Runs in the master at start-up, before it forks any worker: starts instrument there,
        # which creates the endpoint (configured by the environment).
        (site / "gunicorn_conf.py").write_text("import instrument\n\ninstrument.configure()\n")
        metrics_port, app_port = free_port(), free_port()
        env = {
            **os.environ,
            "PYTHONPATH": os.pathsep.join([str(site), os.environ.get("PYTHONPATH", "")]),
            "INSTRUMENT_EXPORTERS": "prometheus",
            "INSTRUMENT_PROMETHEUS_ADDRESS": f"127.0.0.1:{metrics_port}",
            "INSTRUMENT_INTERVAL": "3600",  # only the workers' exit flush delivers their counts:
            "INSTRUMENT_LIVE_INTERVAL": "0",  # scrapes do not ask them (TestLiveScrapes covers that)
            "XDG_RUNTIME_DIR": str(tmp_path),  # gunicorn's control socket goes here, not to $HOME
        }
        log = tmp_path / "gunicorn.log"
        with open(log, "wb") as log_file:
            gunicorn = subprocess.Popen(
                [sys.executable, "-m", "gunicorn", "-c", "gunicorn_conf.py", "--workers", "2",
                 "--max-requests", "20", "--bind", f"127.0.0.1:{app_port}", "app:app"],
                cwd=site, env=env, stdout=log_file, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            )
        try:
            _wait_for_port(app_port, gunicorn, log)
            server = prometheus_server(f"127.0.0.1:{metrics_port}")
            with ThreadPoolExecutor(16) as pool:
                by_worker = Counter(pool.map(lambda _: _get(f"http://127.0.0.1:{app_port}/"), range(300)))
            recycled = [n for n in by_worker.values() if n == 20]  # a worker exits after its 20th request
            assert len(recycled) >= 5, by_worker
            server.wait_for_value("app_requests_total", sum(recycled))  # delivered by their exit flush
            gunicorn.send_signal(signal.SIGHUP)  # new workers; the old ones exit gracefully and flush
            server.wait_for_value("app_requests_total", 300)
            found = samples(scrape(f"http://127.0.0.1:{metrics_port}/metrics")[1])
            failures = {k: v for k, v in found.items() if k.startswith("instrument_export_failures")}
            assert {} == failures
        finally:
            gunicorn.terminate()
            try:
                gunicorn.wait(30)
            except subprocess.TimeoutExpired:
                gunicorn.kill()
                gunicorn.wait()
        assert "Traceback" not in log.read_text()


def _get(url):
    with urllib.request.urlopen(url, timeout=30) as response:
        return response.read().decode()


def _wait_for_port(port, process, log: Path, timeout=30.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"gunicorn exited with {process.returncode}:\n{log.read_text()}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.1)
    pytest.fail(f"gunicorn did not listen within {timeout} s:\n{log.read_text()}")


def _le_values(body):
    found = {}
    for line in body.splitlines():
        if "_bucket{" in line:
            family = line.partition("_bucket{")[0]
            found.setdefault(family, []).append(line.partition('le="')[2].partition('"')[0])
    return found
