"""Which hot path runs: the C extension `instrument._fast`, or the pure-Python reference.

Both implement the same recording functions on the same per-thread buffers (`_buffers`),
so everything past the append (collector, aggregation, exporters) is shared and cannot
tell them apart. The C path is used when the extension was built (``pip install`` builds
it where a C compiler and Python's headers exist) unless ``INSTRUMENT_PURE_PYTHON`` is
set to a true value; `instrument.__speedups__` says which path runs. Read once, at import:
the path cannot change in a running process.
"""

from __future__ import annotations

import importlib
import os
from types import ModuleType

VARIABLE = "INSTRUMENT_PURE_PYTHON"
_TRUE = {"1", "true", "yes", "on"}


def _load() -> tuple[ModuleType | None, str]:
    if os.environ.get(VARIABLE, "").strip().lower() in _TRUE:
        return None, f"{VARIABLE} is set"
    try:  # absent where it was not built (no compiler, or not a CPython it was built for)
        fast = importlib.import_module(f"{__package__}._fast")
    except ImportError as error:
        return None, f"the C extension is not available ({error})"
    return fast, "the C extension instrument._fast"


fast, REASON = _load()
ACTIVE = fast is not None
"""True when the C fast path records; False on the pure-Python path (REASON says why)."""
