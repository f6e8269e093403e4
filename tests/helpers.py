"""Helpers shared by the tests."""

from __future__ import annotations

import importlib
import os
import shutil
import socket
import sysconfig
from typing import Any

import pytest

from instrument.exporters.memory import MemoryExporter

IN_CI = os.environ.get("INSTRUMENT_CI") == "1"
FREE_THREADED = bool(sysconfig.get_config_var("Py_GIL_DISABLED"))

# Packages that publish no build for free-threaded CPython (pyproject's `test` extras,
# which tox's py313t leaves out for `test-core`): their tests skip there, in CI too.
GIL_ONLY = {
    "grpc": "grpcio publishes no free-threaded wheel (and its source build takes 15 minutes)",
    # Its collector binary embeds the libpython of a GIL build; the one older release
    # that installs on 3.13t needs glibc 2.38.
    "rotel": "rotel (an OpenTelemetry collector) publishes no free-threaded wheel",
    "psycopg2": "psycopg2 2.9 turns the GIL back on when imported (not declared free-threading safe)",
    "asyncpg": "asyncpg publishes no free-threaded wheel",
    "uvloop": "uvloop publishes no free-threaded wheel",
}


def counter_total(exporter: MemoryExporter, name: str, tags: dict | None = None) -> int | float:
    """Sum of a counter over every batch exported so far, for series whose tags include *tags*."""
    wanted = tags or {}
    return sum(
        p.value
        for b in exporter.batches
        for p in b.points
        if p.name == name and all(p.tags.get(k) == v for k, v in wanted.items())
    )


def require_binary(name: str, search: str | None = None, provider: str = ".ci/run") -> str:
    """Path of server binary *name* (on PATH, or on *search*); skip without it, but fail in
    CI, where *provider* must install it."""
    path = shutil.which(name, path=search)
    if path is None:
        message = f"server binary {name!r} is not installed"
        if IN_CI:
            pytest.fail(message + f" (INSTRUMENT_CI=1: {provider} must install it)")
        pytest.skip(message)
    return path


def require_module(name: str) -> Any:
    """Import Python package *name*; skip without it, but fail in CI, whose test extras install it."""
    try:
        return importlib.import_module(name)
    except ImportError:
        message = f"Python package {name!r} is not installed"
        if FREE_THREADED and name in GIL_ONLY:
            pytest.skip(f"{message}: {GIL_ONLY[name]}", allow_module_level=True)
        if IN_CI:
            pytest.fail(message + " (INSTRUMENT_CI=1: it belongs in the 'test' extras)")
        pytest.skip(message, allow_module_level=True)


def free_port(kind: int = socket.SOCK_STREAM) -> int:
    """A port on 127.0.0.1 (TCP, or UDP for SOCK_DGRAM) that nothing is bound to right now."""
    with socket.socket(socket.AF_INET, kind) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])
