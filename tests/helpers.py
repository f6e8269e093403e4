"""Helpers shared by the tests."""

from __future__ import annotations

import importlib
import os
import shutil
import socket
from typing import Any

import pytest

from instrument.exporters.memory import MemoryExporter

IN_CI = os.environ.get("INSTRUMENT_CI") == "1"


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
        if IN_CI:
            pytest.fail(message + " (INSTRUMENT_CI=1: it belongs in the 'test' extras)")
        pytest.skip(message, allow_module_level=True)


def free_port(kind: int = socket.SOCK_STREAM) -> int:
    """A port on 127.0.0.1 (TCP, or UDP for SOCK_DGRAM) that nothing is bound to right now."""
    with socket.socket(socket.AF_INET, kind) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])
