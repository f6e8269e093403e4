"""Helpers shared by the tests."""

from __future__ import annotations

import os
import shutil

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


def require_binary(name: str) -> str:
    """Path of server binary *name*; skip without it, but fail in CI, which must provide it."""
    path = shutil.which(name)
    if path is None:
        message = f"server binary {name!r} is not installed"
        if IN_CI:
            pytest.fail(message + " (INSTRUMENT_CI=1: .ci/run must install it)")
        pytest.skip(message)
    return path
