"""http: batches POSTed as gzip'd JSON to a real test server, with bounded retries."""

from __future__ import annotations

import itertools
import json
import logging
import math
import os
import socket
import threading
import time
from email.utils import formatdate

import pytest

import instrument
from instrument._config import Config, ConfigurationError, Settings, settings
from instrument._histogram import HistogramData
from instrument._model import Batch, Point
from instrument.exporters.http import MAX_ATTEMPTS, SCHEMA, HttpExporter, HttpExportError

from ..helpers import counter_total
from .http_receiver import Endpoint

SECRET = "s3cret-token-value"


@pytest.fixture
def endpoint():
    with Endpoint() as endpoint:
        yield endpoint


def config(url: str, **options) -> Config:
    """A checked configuration for the exporter (not applied to the process)."""
    return settings.prepare({"http_url": url, "http_timeout": 2.0, "interval": 10.0, **options})[1]


def batch(*points: Point, seq: int = 1) -> Batch:
    return Batch(seq, 100.0, 110.0, list(points) or [Point("http.test", "counter", "", {}, 100.0, 110.0, value=1)], 1)


class TestConstruction:
    def test_missing_url_says_how_to_set_it(self):
        """Without http_url the exporter refuses to start and names both ways to set it."""
        with pytest.raises(ConfigurationError, match=r"set INSTRUMENT_HTTP_URL or configure\(http_url=\.\.\.\)"):
            HttpExporter(Settings({}).current)  # nothing set, whatever earlier tests configured

    def test_repr_shows_header_names_only(self):
        """The repr shows the URL without credentials and the header names, never their values."""
        exporter = HttpExporter(config("https://user:pw@metrics.example/ingest?token=abc",
                                       http_headers={"Authorization": SECRET}))
        text = repr(exporter)
        assert "https://metrics.example/ingest" in text and "Authorization" in text
        assert not any(secret in text for secret in (SECRET, "pw", "abc"))


class TestBody:
    def test_batch_as_gzipped_json(self, endpoint, exported, monkeypatch):
        """One POST per batch: gzip'd JSON with schema, resource, interval and the jsonl point objects."""
        monkeypatch.setenv("OTEL_SERVICE_NAME", "checkout")
        exporter = HttpExporter(config(endpoint.url, http_headers={"Authorization": f"Bearer {SECRET}"}))
        instrument.configure(exporters=[exporter, exported])
        instrument.count("http.requests", 2, tags={"route": "/a"})
        instrument.gauge("http.queue", 4)
        instrument.record("http.bytes", 1000)
        with instrument.timer("http.work"):
            time.sleep(0.001)
        assert instrument.flush(5.0)

        (request,) = endpoint.requests
        assert ("POST", "/ingest") == (request.method, request.path)
        assert ("application/json", "gzip", f"Bearer {SECRET}") == (
            request.headers["content-type"], request.headers["content-encoding"], request.headers["authorization"],
        )
        document = request.document()
        sent = exported.batches[-1]
        assert {
            "schema": SCHEMA,
            "resource": {"service.name": "checkout", "pid": os.getpid(), "host.name": socket.gethostname()},
            "seq": sent.seq,
            "start_time": sent.start_time,
            "end_time": sent.end_time,
            "points": json.loads(json.dumps([point.as_dict() for point in sent.points])),
        } == document
        names = {point["name"] for point in document["points"]}
        assert {"http.requests", "http.queue", "http.bytes", "http.work"} <= names

    def test_a_point_json_cannot_hold_is_dropped_alone_and_counted(self, endpoint, exported):
        """A sum that overflowed to infinity leaves its point out; the rest of the batch is sent."""
        exporter = HttpExporter(config(endpoint.url))
        overflowed = HistogramData(count=2, sum=math.inf, min=1e308, max=1e308, scale=0, zero_count=0,
                                   positive={1023: 2}, negative={})
        exporter.export(batch(
            Point("http.overflowed", "histogram", "", {}, 100.0, 110.0, histogram=overflowed),
            Point("http.fine", "counter", "", {}, 100.0, 110.0, value=3),
        ))
        (request,) = endpoint.requests
        assert [("http.fine", 3)] == [(point["name"], point["value"]) for point in request.document()["points"]]
        instrument.flush(5.0)
        dropped = {"reason": "unexportable", "exporter": "http"}
        assert 1 == counter_total(exported, "instrument.records.dropped", dropped)

    def test_empty_batch_sends_nothing(self, endpoint):
        """A batch without points is not posted."""
        HttpExporter(config(endpoint.url)).export(Batch(1, 100.0, 110.0, [], 0))
        assert [] == endpoint.requests


class TestFork:
    def test_forked_child_sends_its_own_pid(self, endpoint):
        """After fork() the child's batches name the child's pid, over its own connections."""
        exporter = HttpExporter(config(endpoint.url))
        exporter.export(batch())
        pid = os.fork()
        if pid == 0:
            code = 1
            try:
                exporter.export(batch(seq=2))
                code = 0
            finally:
                os._exit(code)
        assert 0 == os.waitpid(pid, 0)[1]
        exporter.export(batch(seq=3))
        resources = {request.document()["seq"]: request.document()["resource"]["pid"] for request in endpoint.requests}
        assert {1: os.getpid(), 2: pid, 3: os.getpid()} == resources


class TestRetries:
    @pytest.mark.parametrize("status", [500, 502, 503, 429])
    def test_transient_status_is_retried(self, endpoint, status):
        """429 and 5xx are retried; the batch gets through on the next attempt, unchanged."""
        endpoint.answer(status)
        HttpExporter(config(endpoint.url)).export(batch())
        first, second = endpoint.requests
        assert first.body == second.body
        assert 0 <= second.at - first.at <= 0.5 + 0.3  # first backoff: full jitter within 0.5 s

    def test_retry_after_seconds_is_honoured(self, endpoint):
        """Retry-After: 1 makes the next attempt wait at least one second."""
        endpoint.answer(429, headers={"Retry-After": "1"})
        HttpExporter(config(endpoint.url)).export(batch())
        first, second = endpoint.requests
        assert 1.0 <= second.at - first.at < 2.0

    def test_retry_after_http_date_is_honoured(self, endpoint):
        """Retry-After as an HTTP date waits until then."""
        endpoint.answer(503, headers={"Retry-After": formatdate(time.time() + 2, usegmt=True)})
        HttpExporter(config(endpoint.url)).export(batch())
        first, second = endpoint.requests
        assert 0.9 <= second.at - first.at < 2.5  # the date has whole seconds

    def test_backoff_grows_within_full_jitter_bounds(self, endpoint):
        """Without Retry-After, retry n waits at most 0.5 * 2**(n-1) seconds."""
        endpoint.answer(500).answer(500).answer(500)
        HttpExporter(config(endpoint.url)).export(batch())
        times = [request.at for request in endpoint.requests]
        assert 4 == len(times)
        for n, (earlier, later) in enumerate(itertools.pairwise(times), start=1):
            assert 0 <= later - earlier <= 0.5 * 2 ** (n - 1) + 0.3

    def test_backoff_doubles_and_each_wait_is_drawn_from_zero_to_it(self, endpoint, monkeypatch):
        """Exponential backoff with full jitter: retry n waits uniform(0, 0.5 * 2**(n-1)) seconds.
        Taking the top of each range shows the doubling; the ranges asked for show the jitter."""
        from instrument.exporters import http as http_exporter

        asked = []

        def top_of_range(low, high):
            asked.append((low, high))
            return high

        monkeypatch.setattr(http_exporter.random, "uniform", top_of_range)
        endpoint.answer(500).answer(500).answer(500)
        HttpExporter(config(endpoint.url)).export(batch())
        assert [(0.0, 0.5), (0.0, 1.0), (0.0, 2.0)] == asked
        times = [request.at for request in endpoint.requests]
        waits = [later - earlier for earlier, later in itertools.pairwise(times)]
        assert [0.5, 1.0, 2.0] == pytest.approx(waits, abs=0.25)

    def test_gives_up_after_max_attempts(self, endpoint):
        """A backend failing every attempt gets MAX_ATTEMPTS of them, then export() raises."""
        for _ in range(MAX_ATTEMPTS + 2):
            endpoint.answer(503, headers={"Retry-After": "0"})
        with pytest.raises(HttpExportError, match=f"failed after {MAX_ATTEMPTS} attempts \\(HTTP 503\\)"):
            HttpExporter(config(endpoint.url)).export(batch())
        assert MAX_ATTEMPTS == len(endpoint.requests)

    def test_retry_after_beyond_the_budget_is_not_waited_for(self, endpoint):
        """When Retry-After exceeds the retry budget (the export interval), export() raises at once."""
        endpoint.answer(429, headers={"Retry-After": "30"})
        started = time.monotonic()
        with pytest.raises(HttpExportError, match=r"retry budget of 1s .*asked to retry after 30s"):
            HttpExporter(config(endpoint.url, interval=1.0)).export(batch())
        assert time.monotonic() - started < 1.0
        assert 1 == len(endpoint.requests)

    def test_a_dropped_connection_is_retried(self):
        """A server that accepts and hangs up at once (requests' ConnectionError) gets retried."""
        accepted = []
        listener = socket.create_server(("127.0.0.1", 0))

        def hang_up():
            while True:
                try:
                    conn, _ = listener.accept()
                except OSError:
                    return
                accepted.append(time.monotonic())
                conn.close()

        threading.Thread(target=hang_up, daemon=True).start()
        try:
            with pytest.raises(HttpExportError, match=r"ConnectionError"):
                HttpExporter(config(f"http://127.0.0.1:{listener.getsockname()[1]}/ingest", interval=2.0)).export(
                    batch())
        finally:
            listener.close()
        assert 2 <= len(accepted) <= MAX_ATTEMPTS  # the first wait is at most 0.5 s of the 2 s budget

    def test_connection_refused_is_retried_within_the_budget(self):
        """Nothing listening: retried, and export() fails within about the export interval."""
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            port = sock.getsockname()[1]
        started = time.monotonic()
        with pytest.raises(HttpExportError, match=r"ConnectionError"):
            HttpExporter(config(f"http://127.0.0.1:{port}/ingest", interval=1.5)).export(batch())
        assert time.monotonic() - started < 1.5 + 0.5

    def test_failures_are_counted_by_the_worker(self, endpoint, exported):
        """A batch that cannot be delivered counts one instrument.export.failures."""
        endpoint.answer(400, b"no")
        instrument.configure(exporters=[HttpExporter(config(endpoint.url)), exported])
        instrument.count("http.counted")
        assert instrument.flush(5.0)
        assert instrument.flush(5.0)
        assert 1 == counter_total(exported, "instrument.export.failures", {"exporter": "http"})


class TestRejections:
    def test_client_error_is_not_retried_and_logged_once(self, endpoint, caplog):
        """A 400 is final: one attempt, one log line with the status and the body's first line."""
        endpoint.answer(400, b"bad schema: points missing\nat line 1\n").answer(400, b"bad schema again\n")
        exporter = HttpExporter(config(endpoint.url))
        with caplog.at_level(logging.ERROR, logger="instrument"):
            with pytest.raises(HttpExportError, match="answered HTTP 400: bad schema: points missing"):
                exporter.export(batch())
            with pytest.raises(HttpExportError, match="answered HTTP 400: bad schema again"):
                exporter.export(batch(seq=2))
        assert 2 == len(endpoint.requests)
        logged = [r.getMessage() for r in caplog.records if r.name == "instrument"]
        assert [f"instrument: {endpoint.url} rejected a batch with HTTP 400: bad schema: points missing "
                "(not retried)"] == logged

    def test_redirect_is_not_followed(self, endpoint):
        """A redirect is not followed, so headers never travel to another host."""
        endpoint.answer(307, headers={"Location": "http://127.0.0.1:1/elsewhere"})
        with pytest.raises(HttpExportError, match="answered HTTP 307"):
            HttpExporter(config(endpoint.url)).export(batch())
        assert 1 == len(endpoint.requests)


class TestSecrets:
    def test_header_values_never_appear_in_logs_or_errors(self, endpoint, caplog):
        """Through retries, rejections and connection errors, no header value is logged or raised."""
        caplog.set_level(logging.DEBUG)
        endpoint.answer(500).answer(400, b"denied")
        headers = {"Authorization": f"Bearer {SECRET}", "X-Api-Key": SECRET}
        configured = config(endpoint.url, http_headers=headers)
        exporter = HttpExporter(configured)
        errors = []
        with pytest.raises(HttpExportError) as raised:
            exporter.export(batch())
        errors.append(raised.value)
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            port = sock.getsockname()[1]
        dead = HttpExporter(config(f"http://127.0.0.1:{port}/ingest?k=1", http_headers=headers, interval=0.5))
        with pytest.raises(HttpExportError) as raised:
            dead.export(batch())
        errors.append(raised.value)
        assert endpoint.requests[0].headers["x-api-key"] == SECRET  # it was sent
        shown = caplog.text + "".join(f"{e!s}{e!r}{e.__cause__!r}{e.__context__!r}" for e in errors)
        shown += repr(exporter) + repr(dead) + repr(configured)
        assert SECRET not in shown


class TestTimeouts:
    def test_hanging_server_fails_within_the_timeout(self, endpoint):
        """A server that never answers makes export() fail after http_timeout, not later."""
        endpoint.hang()
        started = time.monotonic()
        with pytest.raises(HttpExportError, match="ReadTimeout"):
            HttpExporter(config(endpoint.url, http_timeout=0.5, interval=0.5)).export(batch())
        assert 0.5 <= time.monotonic() - started < 1.5

    def test_flush_never_blocks_past_its_timeout(self, endpoint, exported):
        """With the backend hanging, the application's flush() returns False at its deadline."""
        endpoint.hang()
        instrument.configure(exporters=[HttpExporter(config(endpoint.url, http_timeout=10.0, interval=1.0))])
        try:
            instrument.count("http.hang")
            started = time.monotonic()
            assert not instrument.flush(0.3)
            assert time.monotonic() - started < 0.8
        finally:
            endpoint.release()
            instrument.configure(exporters=[exported])
