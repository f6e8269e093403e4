"""Fixtures for the exporter tests."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from .receivers import EXPORTERS, Receiver, receiving


@pytest.fixture(params=EXPORTERS)
def receiver(request: Any, tmp_path: Path) -> Iterator[Receiver]:
    """Each exporter's real receiver on 127.0.0.1, for one test."""
    with receiving(request.param, tmp_path) as found:
        yield found
