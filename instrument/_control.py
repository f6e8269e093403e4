"""`configure()`, `flush()` and `shutdown()`: the public controls of the runtime."""

from __future__ import annotations

from typing import Any

from ._runtime import RUNTIME


def configure(**options: Any) -> None:
    """Set options; each is also an ``INSTRUMENT_<OPTION>`` variable, which it overrides.

    The options (``exporters``, ``interval``, ...) are listed in docs/configuration.md,
    whose table is checked against their one declaration, `instrument._config.Config`.
    Options not given keep their earlier value. A bad value, or a bad
    ``INSTRUMENT_*`` variable, raises `ConfigurationError` naming it, and then nothing
    has changed; exporters are created here, so a missing dependency fails here.
    Exporters whose options did not change keep running. This starts instrument (see
    docs/design.md, "Starting").
    """
    RUNTIME.configure(options)


def flush(timeout: float = 5.0) -> bool:
    """Export everything recorded before this call; wait at most *timeout* seconds.

    Returns True when every exporter has handled it in time.
    """
    return RUNTIME.pipeline.flush(timeout)


def shutdown(timeout: float = 5.0) -> bool:
    """Flush, then stop the background threads and shut the exporters down.

    Also runs at interpreter exit (with ``exit_timeout``). Recording afterwards is
    kept in buffers but not exported until `configure()` is called again.
    """
    return RUNTIME.pipeline.shutdown(timeout)
