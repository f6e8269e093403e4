"""Exporters: where aggregated batches go.

An exporter is a small class with ``export(batch)`` and ``shutdown()``. Each runs on
its own background thread with a bounded queue, so a slow or failing backend never
blocks the application or the other exporters. Built-in exporters are chosen by
name (``configure(exporters=["jsonl"])`` or ``INSTRUMENT_EXPORTERS=jsonl``); a
package adds its own under the entry-point group ``instrument.exporters``; an
instance can also be passed directly (``configure(exporters=[MemoryExporter()])``).

Exporter modules are imported only when configured.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from .._histogram import HistogramData
from .._model import Batch, Point
from .._options import Option

if TYPE_CHECKING:
    from .._config import Config

__all__ = [
    "Batch",
    "ExportError",
    "Exporter",
    "HistogramData",
    "MissingDependency",
    "Option",
    "Point",
    "available",
    "check_exporter_spec",
    "create",
]

ENTRY_POINT_GROUP = "instrument.exporters"

# name -> "module:Class", imported on use.
BUILTIN = {
    "console": "instrument.exporters.console:ConsoleExporter",
    "dogstatsd": "instrument.exporters.statsd:DogStatsdExporter",
    "http": "instrument.exporters.http:HttpExporter",
    "jsonl": "instrument.exporters.jsonl:JsonlExporter",
    "memory": "instrument.exporters.memory:MemoryExporter",
    "otlp": "instrument.exporters.otlp:OtlpExporter",
    "prometheus": "instrument.exporters.prometheus:PrometheusExporter",
    "statsd": "instrument.exporters.statsd:StatsdExporter",
    "summary": "instrument.exporters.summary:SummaryExporter",
}

# name -> (the extra that installs its dependencies, a module that extra provides).
EXTRAS = {
    "http": ("http", "requests"),
    "otlp": ("otlp", "opentelemetry.exporter.otlp.proto.http"),
}


class ExportError(Exception):
    """A backend did not take a batch. Every built-in exporter's delivery errors derive
    from it (keeping their standard bases too: `RuntimeError`, `OSError`, `ConnectionError`);
    the pipeline counts them in ``instrument.export.failures`` and logs the first."""


class Exporter:
    """Base class for exporters. Subclasses set `name` and implement `export`.

    ``export`` runs on the exporter's own thread, one batch at a time; raising
    counts a failure (``instrument.export.failures``) and the next batch is tried.
    ``shutdown`` runs once, on that thread, after the last batch.

    `options` names the options (see docs/configuration.md) the exporter is created
    from: when `configure()` changes one of them, an exporter created by name is
    created again; otherwise it keeps running. An exporter registered under the
    ``instrument.exporters`` entry-point group may also declare options of its own there,
    as `Option` objects (``Option(default, parse, help, name="acme_url")``): they are
    then ``configure(acme_url=...)`` and ``INSTRUMENT_ACME_URL`` like instrument's own,
    and it reads them with ``config.option("acme_url")``.

    A `live` exporter (one that serves what was recorded, such as a scrape endpoint)
    is asked every ``live_interval`` seconds whether it wants the records since its
    last batch (its ``live_wanted()``; without one, it gets them every
    ``live_interval``), instead of one batch per ``interval``; the others still get
    one per interval.
    """

    live = False

    name = "exporter"
    options: tuple[str | Option, ...] = ()

    def __init__(self, config: Config | None = None) -> None:
        """*config*: the options in effect, when created by name (read what `options` names)."""

    def export(self, batch: Batch) -> None:
        raise NotImplementedError

    def shutdown(self) -> None:
        """Release resources; called once after the last `export`."""


def declared_options(specs: Iterable[Any]) -> dict[str, Option]:
    """The options that the classes of the exporters named in *specs* declare (`Option`
    objects in ``options``; built-in exporters only name instrument's own), by name.
    Loads those classes (entry points); a name that cannot be loaded declares nothing
    here (`create` reports it)."""
    found: dict[str, Option] = {}
    for spec in specs:
        exporter_class: Any = type(spec) if not isinstance(spec, str) else None
        if isinstance(spec, str) and spec not in BUILTIN:
            try:
                exporter_class = _load(spec)
            except Exception:
                continue
        for option in getattr(exporter_class, "options", ()):
            if isinstance(option, Option):
                found[option.name] = option
    return found


def import_what_requests_imports_late() -> None:
    """requests imports `netrc` (and with it `shlex`) at its first request
    (``requests.utils.get_netrc_auth``). An exporter sending with requests calls this
    when it is created, so that nothing is imported on its export thread (see
    `instrument._pipeline.Pipeline.prepare`)."""
    import netrc  # noqa: F401


def _entry_points() -> dict[str, Any]:
    from importlib.metadata import entry_points

    return {ep.name: ep for ep in entry_points(group=ENTRY_POINT_GROUP)}


def available() -> list[str]:
    """Names usable in ``configure(exporters=[...])``: built-in and installed."""
    return sorted({*BUILTIN, *_entry_points()})


def check_exporter_spec(spec: object) -> None:
    """Raise a clear error unless *spec* names a known exporter or is an exporter object."""
    if isinstance(spec, str):
        if spec in EXTRAS:
            _check_dependency(spec)
        if spec in BUILTIN or spec in _entry_points():
            return
        raise ValueError(f"unknown exporter {spec!r}; known exporters: {', '.join(available())}")
    if callable(getattr(spec, "export", None)) and callable(getattr(spec, "shutdown", None)):
        return
    raise TypeError(
        f"an exporter is a name or an object with export(batch) and shutdown(), got {spec!r}"
    )


class MissingDependency(ValueError):
    """A configured exporter's dependency is not installed; the message says what to run."""


def _missing(name: str, module: str) -> MissingDependency:
    return MissingDependency(f"exporter {name!r} needs {module}: pip install 'instrument-client[{EXTRAS[name][0]}]'")


def _check_dependency(name: str) -> None:
    """Fail now, without importing it, when the exporter's dependency is absent."""
    from importlib.util import find_spec

    module = EXTRAS[name][1]
    try:
        found = find_spec(module) is not None
    except ImportError:  # a parent package is missing
        found = False
    if not found:
        raise _missing(name, module)


def _load(name: str) -> Any:
    target = BUILTIN.get(name)
    if target is None:
        return _entry_points()[name].load()
    module_name, _, attribute = target.partition(":")
    from importlib import import_module

    try:
        return getattr(import_module(module_name), attribute)
    except ImportError as exc:
        if name not in EXTRAS or (exc.name or "").startswith("instrument"):
            raise
        raise _missing(name, exc.name or EXTRAS[name][1]) from exc


def create(spec: Any, config: Config) -> Any:
    """An exporter object for *spec* (a name or an object, returned as it is)."""
    check_exporter_spec(spec)
    if not isinstance(spec, str):
        return spec
    exporter = _load(spec)(config)
    if not getattr(exporter, "name", None) or exporter.name == Exporter.name:
        exporter.name = spec
    return exporter
