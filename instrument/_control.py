"""`configure()`, `flush()` and `shutdown()`: the public controls of the pipeline."""

from __future__ import annotations

import threading
from typing import Any

from . import _buffers, _record, _signals
from ._config import Config, ConfigurationError, launcher_process, settings
from ._pipeline import PIPELINE


def _apply_limits(config: Config) -> None:
    _record.ENABLED = config.enabled
    _record.SLOW_AT = _buffers.slow_threshold(config.buffer_size, config.max_pending)
    _buffers.set_limits(config.buffer_size, config.max_pending)


def configure(**options: Any) -> None:
    """Set options; each is also an ``INSTRUMENT_<OPTION>`` variable, which it overrides.

    Options: ``enabled``, ``exporters`` (names or exporter objects), ``interval``
    (seconds between exports), ``jsonl_path``, ``cardinality_limit`` (tag sets per
    metric), ``buffer_size`` (un-aggregated records per thread), ``max_pending``
    (un-aggregated records in all), ``queue_size`` (batches waiting per exporter),
    ``exit_timeout`` (seconds the exit flush may take), ``flush_on_sigterm`` (flush
    when SIGTERM arrives, then end as SIGTERM would; main thread only),
    ``disabled_integrations`` and
    the exporters' own options (see docs/configuration.md). Options not given keep
    their earlier value. A bad value raises `ConfigurationError` naming it, and then
    nothing has changed; exporters are created here, so a missing dependency fails here.
    Exporters whose options did not change keep running.
    """
    arguments, config = settings.prepare(options)
    if config.flush_on_sigterm and "flush_on_sigterm" in options and threading.current_thread() is not (
        threading.main_thread()
    ):
        raise ConfigurationError(
            "configure(flush_on_sigterm=True) must be called from the main thread: "
            "Python lets only the main thread handle signals"
        )

    def commit() -> Config:
        settings.commit(arguments, config)
        _apply_limits(config)
        return config

    PIPELINE.configure(commit, config, build="exporters" in options)
    _signals.apply(config.enabled and config.flush_on_sigterm)


def flush(timeout: float = 5.0) -> bool:
    """Export everything recorded before this call; wait at most *timeout* seconds.

    Returns True when every exporter has handled it in time.
    """
    return PIPELINE.flush(timeout)


def shutdown(timeout: float = 5.0) -> bool:
    """Flush, then stop the background threads and shut the exporters down.

    Also runs at interpreter exit (with ``exit_timeout``). Recording afterwards is
    kept in buffers but not exported until `configure()` is called again.
    """
    return PIPELINE.shutdown(timeout)


def _start_eager_exporters(config: Config) -> None:
    from .exporters import EAGER

    if any(isinstance(spec, str) and spec in EAGER for spec in config.exporters):
        PIPELINE.prepare()


_apply_limits(settings.current)
# The `instrument` command itself (run, report) exports nothing: it must neither take
# the Prometheus port nor append to the jsonl file it is reading. Nor does a process
# with the kill switch off (INSTRUMENT_ENABLED=false).
if settings.current.exporters and settings.current.enabled and not launcher_process():
    _start_eager_exporters(settings.current)
