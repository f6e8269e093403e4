"""Fixtures for the exporter tests."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import instrument
from instrument.exporters.prometheus import PrometheusExporter

from ..helpers import require_binary
from .prometheus_support import PrometheusServer
from .receivers import EXPORTERS, Receiver, receiving


@pytest.fixture(params=EXPORTERS)
def receiver(request: Any, tmp_path: Path) -> Iterator[Receiver]:
    """Each exporter's real receiver on 127.0.0.1, for one test."""
    with receiving(request.param, tmp_path) as found:
        yield found


@pytest.fixture
def exporter():
    """A Prometheus exporter on a free port, fed by hand with export(); shut down after."""
    created = PrometheusExporter(address=("127.0.0.1", 0))
    yield created
    created.shutdown()


@pytest.fixture
def endpoint():
    """A Prometheus exporter on a free port wired into the pipeline (exports on flush())."""
    created = PrometheusExporter(address=("127.0.0.1", 0))
    instrument.flush(5.0)  # earlier tests' records go to earlier exporters
    instrument.configure(exporters=[created], interval=3600.0, enabled=True)
    yield created
    instrument.flush(5.0)
    instrument.configure(exporters=[], interval=10.0)
    created.shutdown()


@pytest.fixture
def port_holder():
    """Another process listening on a TCP port of 127.0.0.1; yields the port."""
    holder = subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent("""
            import socket, sys
            sock = socket.socket()
            sock.bind(("127.0.0.1", 0))
            sock.listen()
            print(sock.getsockname()[1], flush=True)
            sys.stdin.read()
        """)],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
    )
    assert holder.stdout is not None
    yield int(holder.stdout.readline())
    holder.communicate("")


@pytest.fixture
def prometheus_server(tmp_path):
    """Starts the real Prometheus server scraping the given targets every second."""
    binary = require_binary("prometheus")
    started = []

    def start(*targets, features=()):
        server = PrometheusServer(binary, tmp_path, list(targets), features)
        started.append(server)
        server.wait_ready()
        return server

    yield start
    for server in started:
        server.stop()
