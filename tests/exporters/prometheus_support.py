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




def scrape(url: str, accept: str | None = None, gzipped: bool = False) -> tuple[str, str]:
    """(Content-Type, body) of one GET of *url*."""
    headers = {"Accept": accept} if accept else {}
    if gzipped:
        headers["Accept-Encoding"] = "gzip"
    with urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=10) as response:
        body = response.read()
        if response.headers.get("Content-Encoding") == "gzip":
            body = gzip.decompress(body)
        return response.headers["Content-Type"], body.decode()


def samples(body: str) -> dict[str, str]:
    """Sample lines of an exposition as {'name{labels}': 'value'}."""
    found = {}
    for line in body.splitlines():
        if line and not line.startswith("#"):
            key, _, value = line.rpartition(" ")
            found[key] = value
    return found




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

    def __init__(self, binary: str, workdir: Path, targets: list[str]) -> None:
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
