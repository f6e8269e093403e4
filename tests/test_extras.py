"""The test extras: what only GIL builds install (``test`` beyond ``test-core``) is exactly
what the tests skip on free-threaded builds, saying why (tests/helpers.py ``GIL_ONLY``)."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

from .helpers import GIL_ONLY

ROOT = Path(__file__).resolve().parents[1]

# The module each `test`-only requirement gives the tests (grpcio comes with the OTLP gRPC
# exporter). psycopg's binary wheels (`psycopg[binary]`) are `test`-only too, but psycopg
# itself is in test-core: the pure psycopg works on 3.13t with the system's libpq.
MODULE_OF = {
    "opentelemetry-exporter-otlp-proto-grpc": "grpc",
    "rotel": "rotel",
    "asyncpg": "asyncpg",
    "uvloop": "uvloop",
    "psycopg2-binary": "psycopg2",
}


def requirement_names(extra: str) -> set[str]:
    declared = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"][extra]
    return {re.match(r"[A-Za-z0-9_.-]+", line).group(0).lower() for line in declared}


def test_what_only_gil_builds_install_is_what_free_threaded_runs_skip():
    gil_only = requirement_names("test") - requirement_names("test-core") - {"instrument-client"}
    assert set(MODULE_OF) == gil_only, "a requirement only GIL builds install: say in MODULE_OF what it provides"
    assert set(MODULE_OF.values()) == set(GIL_ONLY)
