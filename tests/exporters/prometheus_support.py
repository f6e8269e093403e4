"""Helpers for the Prometheus exporter's tests: scrapes, a real Prometheus server, ports."""

from __future__ import annotations

import gzip
import json
import subprocess
import time
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from ..helpers import free_port

OPENMETRICS_ACCEPT = "application/openmetrics-text;version=1.0.0,text/plain;version=0.0.4;q=0.5,*/*;q=0.1"
# What Prometheus sends once native histograms are enabled.
PROTOBUF_ACCEPT = (
    "application/vnd.google.protobuf;proto=io.prometheus.client.MetricFamily;encoding=delimited,"
    "application/openmetrics-text;version=1.0.0;q=0.8,text/plain;version=0.0.4;q=0.5,*/*;q=0.1"
)



def scrape(url: str, accept: str | None = None, gzipped: bool = False) -> tuple[str, str]:
    """(Content-Type, body) of one GET of *url*."""
    headers = {"Accept": accept} if accept else {}
    if gzipped:
        headers["Accept-Encoding"] = "gzip"
    content_type, body = scrape_bytes(url, headers)
    return content_type, body.decode()


def scrape_bytes(url: str, headers: dict[str, str]) -> tuple[str, bytes]:
    """(Content-Type, body) of one GET of *url*, un-gzipped."""
    with urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=10) as response:
        body = response.read()
        if response.headers.get("Content-Encoding") == "gzip":
            body = gzip.decompress(body)
        return response.headers["Content-Type"], body


def metric_family_class() -> Any:
    """``io.prometheus.client.MetricFamily`` as the ``protobuf`` package builds it from a
    descriptor of prometheus/client_model's metrics.proto (the messages and fields the
    endpoint writes, and the classic ones beside them), to decode with protobuf's own parser."""
    from google.protobuf import descriptor_pb2, descriptor_pool, message_factory

    types = descriptor_pb2.FieldDescriptorProto
    file = descriptor_pb2.FileDescriptorProto(name="instrument_test_metrics.proto", package="io.prometheus.client")
    layout = {
        "LabelPair": [("name", 1, "string", ""), ("value", 2, "string", "")],
        "Gauge": [("value", 1, "double", "")],
        "Counter": [("value", 1, "double", "")],
        "Untyped": [("value", 1, "double", "")],
        "Bucket": [("cumulative_count", 1, "uint64", ""), ("upper_bound", 2, "double", "")],
        "BucketSpan": [("offset", 1, "sint32", ""), ("length", 2, "uint32", "")],
        "Histogram": [
            ("sample_count", 1, "uint64", ""), ("sample_sum", 2, "double", ""), ("bucket", 3, "Bucket", "*"),
            ("schema", 5, "sint32", ""), ("zero_threshold", 6, "double", ""), ("zero_count", 7, "uint64", ""),
            ("negative_span", 9, "BucketSpan", "*"), ("negative_delta", 10, "sint64", "*"),
            ("positive_span", 12, "BucketSpan", "*"), ("positive_delta", 13, "sint64", "*"),
        ],
        "Metric": [
            ("label", 1, "LabelPair", "*"), ("gauge", 2, "Gauge", ""), ("counter", 3, "Counter", ""),
            ("untyped", 5, "Untyped", ""), ("timestamp_ms", 6, "int64", ""), ("histogram", 7, "Histogram", ""),
        ],
        "MetricFamily": [("name", 1, "string", ""), ("help", 2, "string", ""), ("type", 3, "int32", ""),
                         ("metric", 4, "Metric", "*")],
    }
    for message_name, fields in layout.items():
        message = file.message_type.add(name=message_name)
        for name, number, kind, repeated in fields:
            field = message.field.add(name=name, number=number)
            field.label = types.LABEL_REPEATED if repeated else types.LABEL_OPTIONAL
            if kind in layout:
                field.type = types.TYPE_MESSAGE
                field.type_name = f".io.prometheus.client.{kind}"
            else:
                field.type = getattr(types, f"TYPE_{kind.upper()}")
    pool = descriptor_pool.DescriptorPool()
    pool.Add(file)
    return message_factory.GetMessageClass(pool.FindMessageTypeByName("io.prometheus.client.MetricFamily"))


def decode_delimited(body: bytes) -> list[Any]:
    """The MetricFamily messages of a length-delimited protobuf exposition."""
    family = metric_family_class()
    found = []
    position = 0
    while position < len(body):
        length = shift = 0
        while True:
            byte = body[position]
            position += 1
            length |= (byte & 0x7F) << shift
            shift += 7
            if byte < 0x80:
                break
        found.append(family.FromString(body[position : position + length]))
        position += length
    return found


def samples(body: str) -> dict[str, str]:
    """Sample lines of an exposition as {'name{labels}': 'value'}."""
    found = {}
    for line in body.splitlines():
        if line and not line.startswith("#"):
            key, _, value = line.rpartition(" ")
            found[key] = value
    return found




def go_float(value: float) -> str:
    """A float as Go (and so Prometheus' own clients) writes an le value."""
    text = repr(value)
    whole, _, fraction = text.partition(".")
    if "e" in text or len(whole) <= 6:
        return text
    digits = (whole + fraction).rstrip("0")
    return f"{digits[0]}.{digits[1:]}e+{len(whole) - 1:02d}" if len(digits) > 1 else f"{digits}e+{len(whole) - 1:02d}"


def register_entry_point(site: Path) -> None:
    """Make ``INSTRUMENT_EXPORTERS=prometheus`` work in subprocesses with *site* on PYTHONPATH.

    A distribution's metadata naming the exporter under the entry-point group, the way a
    third-party exporter plugs in; harmless once "prometheus" is a built-in name.
    """
    info = site / "instrument_prometheus_test_plugin-0.dist-info"
    info.mkdir(parents=True, exist_ok=True)
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: instrument-prometheus-test-plugin\nVersion: 0\n")
    (info / "entry_points.txt").write_text(
        "[instrument.exporters]\nprometheus = instrument.exporters.prometheus:PrometheusExporter\n"
    )


class PrometheusServer:
    """The real `prometheus` binary scraping *targets* every second, with its storage in *workdir*."""

    def __init__(self, binary: str, workdir: Path, targets: list[str], features: tuple[str, ...] = ()) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        config = workdir / "prometheus.yml"
        config.write_text(
            "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\n"
            "scrape_configs:\n  - job_name: instrument\n    static_configs:\n"
            f"      - targets: [{', '.join(json.dumps(t) for t in targets)}]\n"
        )
        self.log = workdir / "prometheus.log"
        with open(self.log, "wb") as log:
            self.process = subprocess.Popen(
                [
                    binary, f"--config.file={config}", f"--storage.tsdb.path={workdir / 'data'}",
                    f"--web.listen-address=127.0.0.1:{self.port}", "--log.level=warn",
                    *(f"--enable-feature={feature}" for feature in features),
                ],
                stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            )

    def _get(self, path: str) -> Any:
        with urllib.request.urlopen(self.url + path, timeout=5) as response:
            return json.loads(response.read())

    def wait_ready(self, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                pytest.fail(f"prometheus exited with {self.process.returncode}:\n{self.log.read_text()}")
            try:
                with urllib.request.urlopen(self.url + "/-/ready", timeout=2) as response:
                    if response.status == 200:
                        return
            except OSError:
                pass
            time.sleep(0.2)
        pytest.fail(f"prometheus was not ready within {timeout} s:\n{self.log.read_text()}")

    def query(self, expression: str) -> list[dict[str, Any]]:
        """The instant vector of a PromQL *expression*."""
        data = self._get("/api/v1/query?" + urllib.parse.urlencode({"query": expression}))
        result: list[dict[str, Any]] = data["data"]["result"]
        return result

    def wait_for_value(self, expression: str, expected: float, timeout: float = 30.0) -> None:
        """Poll until *expression* is one sample equal to *expected*; fail with what was seen."""
        deadline = time.monotonic() + timeout
        seen: list[dict[str, Any]] = []
        while time.monotonic() < deadline:
            seen = self.query(expression)
            if len(seen) == 1 and float(seen[0]["value"][1]) == expected:
                return
            time.sleep(0.5)
        targets = self._get("/api/v1/targets")["data"]["activeTargets"]
        health = [(t["scrapeUrl"], t["health"], t["lastError"]) for t in targets]
        pytest.fail(f"{expression} is {seen!r}, not {expected!r}, after {timeout} s; targets: {health!r}")

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
