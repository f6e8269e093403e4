"""instrument: low-overhead latency and count instrumentation for Python services.

Recording appends to a buffer owned by the calling thread; one background thread
aggregates and exports to the configured backends. See docs/ for the guide.
"""

from __future__ import annotations

from . import _speedups
from ._config import ConfigurationError
from ._control import configure, flush, shutdown
from ._decorate import counted, timed
from ._record import count, gauge, record
from ._timer import Timer, timer

__version__ = "0.1.0"
__speedups__ = _speedups.ACTIVE  # True when the C fast path (instrument._fast) records

__all__ = [
    "ConfigurationError",
    "Timer",
    "configure",
    "count",
    "counted",
    "flush",
    "gauge",
    "record",
    "shutdown",
    "timed",
    "timer",
]

for _name in __all__:
    _obj = globals()[_name]
    if getattr(_obj, "__module__", "").startswith("instrument."):
        _obj.__module__ = "instrument"
del _name, _obj
