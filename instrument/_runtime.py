"""The runtime: the one object that owns instrument's process-wide state, and its start.

`import instrument` creates it and does nothing else: it reads the ``INSTRUMENT_*``
variables (a malformed one is kept, to be reported at start) and sets what the hot path
reads. No thread, no exit or fork hook, no signal handler, no port, no file, no error.

It *starts* at one of three moments, always in the thread that causes it:

- `configure()` (exporters are created there; a bad variable raises there);
- the ``instrument run`` bootstrap (`prepare`: exporters created before the program
  runs or forks);
- the first record of a process configured only from the environment
  (`ensure_started`, from the hot path's slow registration; it never raises: a bad
  variable is logged once and instrumentation stays off).

Starting registers the exit and fork hooks (once per process: the fork hook cannot be
unregistered, so it does nothing while nothing runs) and starts the pipeline's threads.
Where threads must not start yet (a uwsgi master, which forks from C), `hold()` makes
the hot path call a stand-in instead, until `release()`.

What the hot path reads (`_record.ENABLED`, `_record.SLOW_AT`, the caps in `_buffers`,
the start hooks) are plain module globals there, written only by `apply()` here.
"""

from __future__ import annotations

import atexit
import os
import sys
import threading
from collections.abc import Callable
from typing import Any

from . import _buffers, _log, _record, _signals
from ._config import Config, ConfigurationError, settings
from ._metrics import reset_gauges
from ._pipeline import PIPELINE, Pipeline, flush_before_multiprocessing_exit, register_multiprocessing_flush

__all__ = ["RUNTIME", "Runtime"]


class Runtime:
    """Settings, pipeline and process hooks, started explicitly (see the module docstring)."""

    def __init__(self, pipeline: Pipeline) -> None:
        self.pipeline = pipeline
        self._hooks_registered = False
        self._held: Callable[[], None] | None = None  # called instead of starting, while set
        self.apply(settings.current)

    # --- what the hot path reads --------------------------------------------------

    def apply(self, config: Config) -> None:
        """Make *config* what the hot path reads: the kill switch, the caps, the start hooks."""
        _record.set_state(
            enabled=config.enabled,
            slow_at=_buffers.slow_threshold(config.buffer_size, config.max_pending),
            on_start=self.ensure_started,
        )
        _buffers.set_limits(config.buffer_size, config.max_pending, first_record_hook=self.ensure_started)

    # --- starting -------------------------------------------------------------------

    @property
    def started(self) -> bool:
        """Whether the collector thread runs."""
        return self.pipeline.running

    def ensure_started(self) -> None:
        """Start on a first record (from the hot path). Never raises."""
        held = self._held
        if held is not None:
            held()
            return
        if self.pipeline.running:
            return
        try:
            if not self._environment_usable():
                return
            settings.resolve()
            self._register_process_hooks()
            self.pipeline.ensure_started()
            self._apply_signal_handler()
        except Exception:  # never into the recording call
            _log.error_once("start", "instrument: could not start", exc_info=True)

    def start(self) -> None:
        """Start now, threads included, in this thread (a uwsgi worker right after its fork)."""
        if not self._environment_usable():
            return
        settings.resolve()
        self._register_process_hooks()
        self.pipeline.start()
        self._apply_signal_handler()

    def prepare(self) -> None:
        """Create the configured exporters now, in this thread (``instrument run``'s bootstrap)."""
        if settings.error is not None:
            raise settings.error
        settings.resolve()
        self._register_process_hooks()
        self.pipeline.prepare()
        self._apply_signal_handler()

    def configure(self, options: dict[str, Any]) -> None:
        """`instrument.configure()`: check, then apply atomically; exporters created here."""
        if settings.error is not None:
            raise settings.error
        arguments, config = settings.prepare(options)
        if config.flush_on_sigterm and "flush_on_sigterm" in options and threading.current_thread() is not (
            threading.main_thread()
        ):
            raise ConfigurationError(
                "configure(flush_on_sigterm=True) must be called from the main thread: "
                "Python lets only the main thread handle signals"
            )
        self._register_process_hooks()

        def commit() -> Config:
            settings.commit(arguments, config)
            self.apply(config)
            return config

        self.pipeline.configure(commit, config)
        self._apply_signal_handler()

    def _apply_signal_handler(self) -> None:
        """SIGTERM flushes (or not) as ``flush_on_sigterm`` says (see `_signals`)."""
        config = settings.current
        _signals.apply(config.enabled and config.flush_on_sigterm, self._flush_if_used,
                       self.pipeline.defer_while_draining)

    def _flush_if_used(self, timeout: float) -> None:
        if self.pipeline.used():
            self.pipeline.flush(timeout)

    def _environment_usable(self) -> bool:
        """False (reported once, instrumentation off) when an ``INSTRUMENT_*`` variable is bad."""
        if settings.error is None:
            return True
        _log.error_once("environment", "instrument: %s; instrumentation is off in this process", settings.error)
        self.apply(Config(enabled=False))
        return False

    # --- threads held back (uwsgi's master) ---------------------------------------

    def hold(self, stand_in: Callable[[], None]) -> bool:
        """Start no thread until `release()`: the hot path calls *stand_in* instead.

        False (nothing held) when the collector runs already.
        """
        if self.pipeline.running:
            return False
        self._held = stand_in
        return True

    def release(self) -> None:
        self._held = None

    @property
    def held(self) -> bool:
        return self._held is not None

    # --- process hooks ------------------------------------------------------------

    def _register_process_hooks(self) -> None:
        """Exit and fork hooks, and multiprocessing's exit finalizer: once per process."""
        if self._hooks_registered:
            return
        self._hooks_registered = True
        atexit.register(self._at_exit)
        if hasattr(os, "register_at_fork"):
            os.register_at_fork(after_in_child=self._after_fork_in_child)
        if _inside_multiprocessing_worker():
            # Started after the fork (forkserver, spawn, or a task starting late): the
            # after-fork path never ran in this process.
            register_multiprocessing_flush()
        elif _preparing_multiprocessing_child():
            # Started while a spawn or forkserver child imports the main module: its
            # bootstrap has yet to clear the finalizers (forkserver children then end
            # with os._exit()).
            flush_before_multiprocessing_exit()

    def _at_exit(self) -> None:
        self.pipeline.at_exit()

    def _after_fork_in_child(self) -> None:
        self.pipeline.after_fork_in_child()

    # --- tests ----------------------------------------------------------------------

    def reset(self, timeout: float = 5.0) -> None:
        """Back to the state right after ``import instrument`` (`instrument.testing.reset`)."""
        self.pipeline.shutdown(timeout)
        self.pipeline.reopen()
        self.pipeline.aggregator.discard()
        _buffers.DROPPED.take()
        reset_gauges()
        settings.reload(os.environ)
        self._held = None
        self.apply(settings.current)
        _signals.apply(False)
        _log.forget_all()


def _inside_multiprocessing_worker() -> bool:
    """True in a multiprocessing child (fork, forkserver or spawn) that starts us late."""
    process = sys.modules.get("multiprocessing.process")
    return process is not None and getattr(process, "parent_process", lambda: None)() is not None


def _preparing_multiprocessing_child() -> bool:
    """True while a spawn or forkserver child (or the fork server) imports the main
    module, before multiprocessing's bootstrap clears the exit finalizers."""
    process = sys.modules.get("multiprocessing.process")
    return process is not None and bool(getattr(process.current_process(), "_inheriting", False))


RUNTIME = Runtime(PIPELINE)
