"""The background side: one collector thread and one thread per exporter.

The collector drains the per-thread buffers into the aggregator (continuously while
records flow, so buffers stay small) and, every ``interval`` seconds or on
`flush()`, cuts a `Batch` and hands it to each exporter's bounded queue. Live
exporters (``live``: the Prometheus endpoint, and the workers forwarding to it) are
asked every ``live_interval`` whether they want the records since their last batch
(``live_wanted()``; one without it gets them every ``live_interval``): the Prometheus
exporter wants them when a scrape asked. The batches cut for them between intervals
are held and merged into the interval's batch for the others and for the listeners,
so every exporter gets every record once. Exporters
run on their own threads: a backend that fails or hangs delays nothing else, and
`flush()`/`shutdown()` wait for it only up to their deadline.

Locks here are never taken on the hot path. The drain lock serialises drains and
cuts; a thread that already holds it (a listener, a signal handler interrupting a
flush) gets ``False`` back instead of deadlocking.

Fork: the child forgets the parent's buffers, aggregates and exporter queues (the
parent exports those once), gets fresh locks and starts its own threads lazily. No
lock is taken around the fork itself. The exit and fork hooks that call in here are
registered by `_runtime.Runtime` when it starts.
"""

from __future__ import annotations

import sys
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from time import monotonic, perf_counter_ns
from typing import Any

from . import _buffers, _log, _record, _threads
from ._aggregation import SELF_DROPPED, Aggregator
from ._config import Config, ConfigurationError, settings
from ._metrics import COUNTER, TIMER, declare_series, reset_gauges
from ._model import Batch, merge
from ._suppress import suppress_thread, suppressing

# While the last drain moved this many records, drain again after BUSY_PERIOD seconds
# instead of sleeping until the next export: aggregation keeps pace with recording and
# buffers stay far below their caps.
BUSY_RECORDS = 1024
BUSY_PERIOD = 0.005


class ExportWorker:
    """One exporter, its bounded queue of batches and the thread that feeds it."""

    def __init__(self, exporter: Any, queue_size: int, spec: str | None = None) -> None:
        self.exporter = exporter
        self.spec = spec  # the name it was created from, if any
        self.name = str(getattr(exporter, "name", None) or type(exporter).__name__)
        self._queue: deque[Batch] = deque()
        self._queue_size = queue_size
        # Re-entrant, so a signal handler calling flush() while this thread waits here
        # (holding the lock between wake-ups) cannot deadlock on submit().
        self._cond = threading.Condition(threading.RLock())
        self._handled = 0  # seq of the newest batch exported, failed or dropped
        self._between: set[int] = set()  # seqs of queued live batches cut between intervals
        self._stopping = False
        self._finished = False
        self._thread: threading.Thread | None = None
        tags = {"exporter": self.name}
        self._batches = declare_series("instrument.export.batches", COUNTER, tags)
        self._failures = declare_series("instrument.export.failures", COUNTER, tags)
        self._duration = declare_series("instrument.export.duration", TIMER, tags, "s")
        self._dropped = declare_series(SELF_DROPPED, COUNTER, {"reason": "export_queue_full", **tags})

    @property
    def thread(self) -> threading.Thread | None:
        return self._thread

    def resize(self, queue_size: int) -> None:
        with self._cond:
            self._queue_size = queue_size

    @property
    def live(self) -> bool:
        """Whether the exporter takes a batch every ``live_interval`` (see `Pipeline`)."""
        return bool(getattr(self.exporter, "live", False))

    def submit(self, batch: Batch, between: bool = False) -> None:
        """Queue *batch*; when the queue is full the oldest batch is dropped and counted.

        A batch cut *between* intervals for a live exporter is not counted in
        ``instrument.export.batches`` and ``.duration``: those records would make the
        next live batch, and so on, even in an idle process.
        """
        with self._cond:
            if self._stopping:
                return
            if len(self._queue) >= self._queue_size:
                lost = self._queue.popleft()
                _record.append(self._dropped, lost.records)
                _log.warn_once(
                    ("queue_full", self.name),
                    "instrument: exporter %r is not keeping up; dropped a batch of %d "
                    "records (counted in instrument.records.dropped)",
                    self.name,
                    lost.records,
                )
            self._queue.append(batch)
            if between:
                self._between.add(batch.seq)
            self._cond.notify()
        if not self.start():
            self._export_here()

    def start(self) -> bool:
        """Start the worker thread if needed; False if threads cannot start any more."""
        with self._cond:
            if self._thread is not None:
                return True
            thread = threading.Thread(target=self._run, name=f"instrument-export-{self.name}", daemon=True)
            # Set first: a KeyboardInterrupt raised as the signal mask is restored (after the
            # start) must not leave a running thread unrecorded.
            self._thread = thread
            try:
                _threads.start(thread)
            except RuntimeError:  # "can't create new thread at interpreter shutdown" (3.12)
                self._thread = None
                return False
            return True

    def _take(self, wait: bool) -> Batch | None:
        """The next queued batch; with *wait*, block until one comes or stop() is called."""
        with self._cond:
            while wait and not self._queue and not self._stopping:
                self._cond.wait()
            return self._queue.popleft() if self._queue else None

    def _handle(self, batch: Batch) -> None:
        with self._cond:
            between = batch.seq in self._between
            self._between.discard(batch.seq)
        self._export(batch, counted=not between)
        with self._cond:
            self._handled = max(self._handled, batch.seq)
            self._cond.notify_all()

    def _export_here(self) -> None:
        """Without a thread (first export during interpreter exit): export in the caller."""
        with suppressing():
            while (batch := self._take(wait=False)) is not None:
                self._handle(batch)

    def _run(self) -> None:
        suppress_thread()  # the exporter's own network traffic is not the application's
        while (batch := self._take(wait=True)) is not None:
            self._handle(batch)
        self._close()

    def _export(self, batch: Batch, counted: bool = True) -> None:
        start = perf_counter_ns()
        try:
            self.exporter.export(batch)
        except Exception:
            _record.append(self._failures, 1)
            _log.error_once(
                ("export", self.name),
                "instrument: exporter %r failed; its batches are counted in "
                "instrument.export.failures until it recovers",
                self.name,
                exc_info=True,
            )
        else:
            _log.forget(("export", self.name))
        if counted:
            _record.append(self._batches, 1)
            _record.append(self._duration, perf_counter_ns() - start)

    def _close(self) -> None:
        try:
            self.exporter.shutdown()
        except Exception:
            _log.error_once(
                ("shutdown", self.name), "instrument: exporter %r failed to shut down", self.name, exc_info=True
            )
        with self._cond:
            self._finished = True
            self._cond.notify_all()

    def wait(self, seq: int, deadline: float) -> bool:
        """Wait until batch *seq* (and all before it) is handled, or until *deadline*."""
        with self._cond:
            while self._handled < seq and not self._finished:
                remaining = deadline - monotonic()
                if remaining <= 0:
                    return False
                self._cond.wait(remaining)
            return self._handled >= seq

    def stop(self, deadline: float) -> bool:
        """Export what is queued, shut the exporter down; give up at *deadline*."""
        with self._cond:
            self._stopping = True
            self._cond.notify_all()
            thread = self._thread
        if thread is None:
            self._close()
            return True
        if thread is not threading.current_thread():
            thread.join(max(0.0, deadline - monotonic()))
        return not thread.is_alive()


class Pipeline:
    def __init__(self) -> None:
        self._listeners: list[Callable[[Batch], None]] = []
        self._closed = False
        self._fresh_state()

    def _fresh_state(self) -> None:
        # Re-entrant: a signal handler may call flush()/shutdown() while its thread is
        # inside one of them. Never taken on the hot path.
        self._state_lock = threading.RLock()
        self._drain_lock = threading.Lock()  # drains and cuts; owner tracked for re-entry
        self._drain_owner: int | None = None
        # The main thread is in, or waiting for, a drain: a signal handler (they run there)
        # that would cut a batch waits for it to end, or the batch being cut would be lost.
        self._main_draining = False
        self._after_main_drain: list[Callable[[], object]] = []
        self.aggregator = Aggregator()
        self._seq = 0
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()  # one per collector run, so a slow one still stops
        self._last_cut = monotonic()
        self._last_live = monotonic()
        self._held: Batch | None = None  # cut for live exporters since the last interval: for the others
        self._workers: list[ExportWorker] = []
        self._built_for: tuple[Any, ...] | None = None
        self._retiring: list[threading.Thread] = []  # threads stopping replaced exporters

    # --- lifecycle -----------------------------------------------------------------

    def ensure_started(self) -> None:
        """Start the pipeline if it is not running. Never raises into the caller.

        Called from the record path (first record of a thread into a series, gauge()).
        The first record of a process configured from the environment therefore
        creates its exporters in the recording thread; `configure()` or the
        ``instrument run`` bootstrap create them earlier.
        """
        if self._thread is not None or self._closed:
            return
        if self._drain_owner == threading.get_ident():
            return  # a signal handler recording inside configure()/flush(): they start it
        try:
            self.start()
        except Exception:  # never into the user's call; _current_workers logs its own failures
            _log.error_once("start", "instrument: the pipeline could not start", exc_info=True)

    def prepare(self) -> None:
        """Create the configured exporters now, in this thread, without starting any thread.

        Everything an exporter imports is imported here. Exporters are never created
        lazily on a background thread at the first export: a fork while another thread
        imports hands the child a half-initialised module, and an exporter first
        created during interpreter exit cannot import or register what it needs.
        """
        _log.prepare()
        with self._drain_locked(), self._state_lock:
            self._current_workers()

    def start(self) -> None:
        """`prepare()`, then start the collector and one thread per exporter."""
        _log.prepare()
        with self._drain_locked(), self._state_lock:
            if self._closed:
                return
            workers = self._current_workers()
            if self._thread is None:
                stop = threading.Event()
                thread = threading.Thread(target=self._run, args=(stop,), name="instrument-collector", daemon=True)
                self._thread = thread
                self._stop = stop
                try:
                    _threads.start(thread)
                except RuntimeError:  # "can't create new thread at interpreter shutdown"
                    self._thread = None
            # Now, while threads can still start: from Python 3.12 none can once the
            # interpreter is exiting (a worker without a thread exports in the caller).
            for worker in workers:
                worker.start()

    @property
    def running(self) -> bool:
        """Whether the collector thread runs."""
        return self._thread is not None

    def used(self) -> bool:
        return self._thread is not None or _buffers.has_lists() or bool(self._workers)

    def reopen(self) -> None:
        """After `shutdown()`: as new, with no listener (`instrument.testing.reset`)."""
        with self._state_lock:
            self._listeners.clear()
            self._closed = False
            self._fresh_state()

    @contextmanager
    def _drain_locked(self) -> Iterator[None]:
        """Hold the drain lock (no-op when this thread already holds it)."""
        if self._drain_owner == threading.get_ident():
            yield
            return
        self._drain_lock.acquire()
        self._drain_owner = threading.get_ident()
        try:
            yield
        finally:
            self._drain_owner = None
            self._drain_lock.release()

    def configure(self, commit: Callable[[], Config], config: Config) -> None:
        """Switch to *config* atomically with respect to drains and cuts.

        Exporters are planned (created) first, in this thread (which may raise: then
        nothing has changed),
        then *commit* makes the settings current and the workers are swapped. When
        instrumentation is being switched off, what was recorded until now is cut
        and exported first.
        """
        _log.prepare()
        with self._drain_locked(), self._state_lock:
            previous = settings.current
            workers = self._plan_workers(config, previous)
            if previous.enabled and not config.enabled:
                self._cut_locked()
            commit()
            if config.enabled and not previous.enabled:
                self.aggregator.start_time = time.time()
            self._closed = False
            retired = [w for w in self._workers if w not in workers]
            self._workers = workers
            self._built_for = config.exporters
            if self._thread is not None:
                for worker in workers:
                    worker.start()
            self._retire(retired, config.exit_timeout)
        _buffers.wake()  # let the collector pick up a new interval now
        if _buffers.has_lists():
            self.ensure_started()

    def _plan_workers(self, config: Config, previous: Config) -> list[ExportWorker]:
        """The workers *config* needs, reusing running ones whose exporter is unaffected."""
        from .exporters import create

        planned = []
        for spec in config.exporters:
            reusable = None
            for worker in self._workers:
                if (worker.spec == spec) if isinstance(spec, str) else (worker.exporter is spec):
                    reusable = worker
                    break
            if reusable is not None and isinstance(spec, str):
                uses = getattr(reusable.exporter, "options", ())  # what it was created from
                if config.values(uses) != previous.values(uses):
                    reusable = None
            if reusable is not None and reusable not in planned:
                reusable.resize(config.queue_size)
                planned.append(reusable)
                continue
            try:
                exporter = spec if not isinstance(spec, str) else create(spec, config)
            except Exception as exc:
                raise ConfigurationError(f"exporter {spec!r} could not start: {exc}") from exc
            planned.append(ExportWorker(exporter, config.queue_size, _name_of(spec)))
        return planned

    def _retire(self, workers: list[ExportWorker], timeout: float) -> None:
        """Stop replaced workers in the background; exit waits for them (see shutdown)."""
        self._retiring = [t for t in self._retiring if t.is_alive()]
        for worker in workers:
            thread = threading.Thread(
                target=worker.stop, args=(monotonic() + timeout,), name="instrument-stop", daemon=True
            )
            try:
                _threads.start(thread)
            except RuntimeError:  # interpreter shutting down: stop it here
                worker.stop(monotonic() + timeout)
                continue
            self._retiring.append(thread)

    def _current_workers(self) -> list[ExportWorker]:
        """The workers for the configured exporters, created here if they are not yet (drain
        lock held). Only ever creates on a thread of the application: the collector's
        cuts find them created by `start()`, `configure()` or the fork handler."""
        config = settings.current
        if self._closed:
            return []
        if self._built_for is not config.exporters and not self._on_our_thread():
            built = []
            for spec in config.exporters:
                try:
                    from .exporters import create

                    built.append(ExportWorker(create(spec, config), config.queue_size, _name_of(spec)))
                except Exception as exc:
                    _log.error_once(
                        ("create", repr(spec)),
                        "instrument: exporter %r could not start (%s); continuing without it",
                        spec,
                        exc,
                    )
            self._retire([w for w in self._workers if w not in built], config.exit_timeout)
            self._workers = built
            self._built_for = config.exporters
        return self._workers

    def _on_our_thread(self) -> bool:
        current = threading.current_thread()
        return current is self._thread or any(worker.thread is current for worker in self._workers)

    # --- collecting ----------------------------------------------------------------

    def _live_due(self) -> float | None:
        """When the next batch for live exporters is due (monotonic), None without any."""
        period = settings.current.live_interval
        if not period or not any(worker.live for worker in self._workers):
            return None
        return self._last_live + period

    def _run(self, stop: threading.Event) -> None:
        busy = False
        while not stop.is_set():
            due = self._last_cut + settings.current.interval
            live = self._live_due()
            wait = min(due, live if live is not None else due) - monotonic()
            if busy:
                wait = min(wait, BUSY_PERIOD)
            _buffers.wait_for_wake(wait)
            if stop.is_set():
                break
            try:
                now = monotonic()
                if now >= self._last_cut + settings.current.interval:
                    batch = self.cut(timeout=None)
                    busy = batch is not None and batch.records >= BUSY_RECORDS
                elif live is not None and now >= live:
                    self._last_live = now
                    wanted = self._live_wanted()  # if not, the records wait in the buffers, as before
                    busy = bool(wanted) and self._live_cut(wanted == "asked") >= BUSY_RECORDS
                else:
                    busy = self.drain(timeout=None) >= BUSY_RECORDS
            except Exception:
                _log.error_once("collector", "instrument: the collector failed; retrying", exc_info=True)
                stop.wait(min(1.0, settings.current.interval))

    def _acquire(self, timeout: float | None) -> bool:
        me = threading.get_ident()
        if self._drain_owner == me:
            return False  # re-entrant: a listener inside a drain
        main = me == threading.main_thread().ident
        if main:
            self._main_draining = True
        acquired = False
        try:
            acquired = self._drain_lock.acquire(timeout=-1 if timeout is None else max(0.0, timeout))
        finally:
            if not acquired and main:
                self._main_drain_over()
        if acquired:
            self._drain_owner = me
        return acquired

    def _release(self) -> None:
        main = self._drain_owner == threading.main_thread().ident
        self._drain_owner = None
        self._drain_lock.release()
        if main:
            self._main_drain_over()

    def _main_drain_over(self) -> None:
        self._main_draining = False
        while self._after_main_drain:
            self._after_main_drain.pop(0)()

    def defer_while_draining(self, action: Callable[[], object]) -> bool:
        """From a signal handler: if it interrupted the main thread in (or waiting for) a drain,
        run *action* once that drain is over and return True; else return False."""
        if not self._main_draining or threading.current_thread() is not threading.main_thread():
            return False
        self._after_main_drain.append(action)
        return True

    def drain(self, timeout: float | None) -> int:
        """Move buffered records into the aggregator; return how many moved."""
        if not self._acquire(timeout):
            return 0
        try:
            if not settings.current.enabled:
                return self.aggregator.discard()
            return self.aggregator.drain()
        finally:
            self._release()

    def cut(self, timeout: float | None) -> Batch | None:
        """Drain, close the interval into a batch and hand it to exporters and listeners.

        After shutdown() the batch goes to listeners (capture()) only.
        """
        if not self._acquire(timeout):
            return None
        try:
            return self._cut_locked()
        finally:
            self._release()

    def _live_wanted(self) -> str:
        """``"asked"`` when a live exporter asks for a batch now (one is cut even if empty: it
        answers a scrape), ``"due"`` when one takes batches every live_interval, else ""."""
        found = ""
        for worker in self._workers:
            if not worker.live:
                continue
            ask = getattr(worker.exporter, "live_wanted", None)
            if ask is None:
                found = found or "due"
                continue
            try:
                if ask():
                    found = "asked"
            except Exception:
                _log.error_once(("live_wanted", worker.name), "instrument: exporter %r failed in live_wanted()",
                                worker.name, exc_info=True)
        return found

    def _live_cut(self, even_empty: bool = False) -> int:
        """Between intervals: the records since the last cut to the live exporters only,
        held for the others (see the module docstring); nothing when nothing was recorded,
        unless *even_empty*. Returns the records moved."""
        if not self._acquire(None):
            return 0
        try:
            self._last_live = monotonic()
            if not settings.current.enabled:
                return self.aggregator.discard()
            moved = self.aggregator.drain()
            workers = self._current_workers()
            if self.aggregator.empty() and not even_empty:
                return moved
            self._seq += 1
            batch = self.aggregator.snapshot(self._seq, settings.current.runtime_metrics)
            for worker in workers:
                if worker.live:
                    worker.submit(batch, between=True)
            if self._listeners or not all(worker.live for worker in workers):
                self._held = batch if self._held is None else _joined(self._held, batch)
            return moved
        finally:
            self._release()

    def _cut_locked(self) -> Batch | None:
        self._last_cut = self._last_live = monotonic()
        if not settings.current.enabled:
            self.aggregator.discard()
            self._held = None
            return None
        self.aggregator.drain()
        self._seq += 1
        batch = self.aggregator.snapshot(self._seq, settings.current.runtime_metrics)
        held, self._held = self._held, None
        whole = batch if held is None else _joined(held, batch)  # the interval's, for all but the live
        for worker in self._current_workers():
            worker.submit(batch if worker.live else whole)
        batch = whole
        for listener in list(self._listeners):
            try:
                listener(batch)
            except Exception:
                _log.error_once(("listener", id(listener)), "instrument: a batch listener failed", exc_info=True)
        return batch

    def add_listener(self, listener: Callable[[Batch], None]) -> None:
        self._listeners.append(listener)

    def remove_listener(self, listener: Callable[[Batch], None]) -> None:
        try:
            self._listeners.remove(listener)
        except ValueError:
            pass

    # --- flush and shutdown --------------------------------------------------------

    def flush(self, timeout: float) -> bool:
        deadline = monotonic() + timeout
        batch = self.cut(timeout)
        if batch is None:
            return False
        current = threading.current_thread()
        return all(
            worker.wait(batch.seq, deadline)
            for worker in list(self._workers)
            if worker.thread is not current  # an exporter flushing cannot wait for itself
        )

    def shutdown(self, timeout: float) -> bool:
        deadline = monotonic() + timeout
        flushed = self.flush(timeout)
        with self._state_lock:
            self._closed = True
            stop, collector = self._stop, self._thread
            self._thread = None
            workers, self._workers = self._workers, []
            self._built_for = None
            retiring, self._retiring = self._retiring, []
        stop.set()
        _buffers.wake()
        if collector is not None and collector is not threading.current_thread():
            collector.join(max(0.0, deadline - monotonic()))
        stopped = [worker.stop(deadline) for worker in workers]
        for thread in retiring:
            thread.join(max(0.0, deadline - monotonic()))
        return flushed and all(stopped)

    def at_exit(self) -> None:
        if self.used() and not self._closed:
            self.shutdown(settings.current.exit_timeout)

    def after_fork_in_child(self) -> None:
        _forget_half_imported_modules()
        _buffers.reset_after_fork()
        _record.lists_unhooked()
        reset_gauges()
        survivors = self._exporters_for_child()
        built_for = self._built_for
        self._fresh_state()
        if survivors is not None:
            queue_size = settings.current.queue_size
            self._workers = [ExportWorker(exporter, queue_size, spec) for exporter, spec in survivors]
            self._built_for = built_for
        flush_before_multiprocessing_exit()

    def _exporters_for_child(self) -> list[tuple[Any, str | None]] | None:
        """Exporters that carry on in a forked child, or None to build them anew there.

        An exporter with ``after_fork_in_child()`` keeps its object and resets what
        must not be shared (locks, files, sockets; the Prometheus exporter turns into
        a forwarder to the parent's endpoint); one created by name is created again;
        one passed as an object is kept.
        """
        if not any(hasattr(worker.exporter, "after_fork_in_child") for worker in self._workers):
            return None
        kept = []
        for worker in self._workers:
            exporter = worker.exporter
            try:
                if hasattr(exporter, "after_fork_in_child"):
                    exporter.after_fork_in_child()
                elif worker.spec is not None:
                    from .exporters import create

                    exporter = create(worker.spec, settings.current)
                kept.append((exporter, worker.spec))
            except Exception:
                _log.error_once(
                    ("fork", worker.name), "instrument: exporter %r failed to carry on after fork", worker.name,
                    exc_info=True,
                )
        return kept


PIPELINE = Pipeline()


def _forget_half_imported_modules() -> None:
    """A fork while another thread was importing one of our modules (an exporter, built
    lazily on the collector thread) leaves the child a half-initialised module: forget
    it, so the child imports it again in full."""
    for name, module in list(sys.modules.items()):
        if name.startswith("instrument.") and getattr(getattr(module, "__spec__", None), "_initializing", False):
            sys.modules.pop(name, None)


def _joined(first: Batch, second: Batch) -> Batch:
    """One batch of two consecutive ones (the second's seq)."""
    points = merge(first.points + second.points)
    return Batch(second.seq, first.start_time, second.end_time, points, first.records + second.records)


def _name_of(spec: Any) -> str | None:
    return spec if isinstance(spec, str) else None


def _flush_at_process_exit() -> None:
    PIPELINE.at_exit()


def register_multiprocessing_flush(_: object = None) -> None:
    """Flush from multiprocessing's exit finalizers (its workers end with os._exit())."""
    util = sys.modules.get("multiprocessing.util")
    if util is not None:
        util.Finalize(None, _flush_at_process_exit, exitpriority=0)


def flush_before_multiprocessing_exit() -> None:
    """multiprocessing's forked workers end with os._exit(), which skips atexit.

    They run multiprocessing's own exit finalizers first; register one there. It has
    to be registered after multiprocessing clears its finalizer registry in the child,
    hence through `register_after_fork`, which it runs right after that.
    """
    util = sys.modules.get("multiprocessing.util")
    if util is not None:
        util.register_after_fork(PIPELINE, register_multiprocessing_flush)
