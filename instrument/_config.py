"""Configuration: `configure()` arguments > `INSTRUMENT_*` variables > defaults.

Every option has one name: the keyword argument of `configure()` and, upper-cased
behind ``INSTRUMENT_``, the environment variable. Values are checked when they are
given (at `configure()` or at import for the environment), never on the hot path.
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterable, Mapping
from typing import Any

from ._options import Option, Parser
from ._resource import parse_pairs

ENV_PREFIX = "INSTRUMENT_"



class ConfigurationError(ValueError):
    """An option or `INSTRUMENT_*` variable has a value instrument cannot use."""


def _where(name: str, from_env: bool) -> str:
    return f"{ENV_PREFIX}{name.upper()}" if from_env else f"configure({name}=...)"


def _parse_bool(name: str, value: object, from_env: bool) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str):
        lowered = value.strip().lower()
        if lowered in ("1", "true", "yes", "on"):
            return True
        if lowered in ("0", "false", "no", "off"):
            return False
    raise ConfigurationError(
        f"{_where(name, from_env)} is {value!r}; use true or false"
    )


def _positive(kind: type, *, allow_zero: bool = False) -> Parser:
    def parse(name: str, value: object, from_env: bool) -> Any:
        what = "a number of seconds" if kind is float else "a whole number"
        try:
            if isinstance(value, bool):
                raise ValueError
            number = kind(value.strip() if isinstance(value, str) else value)
        except (TypeError, ValueError):
            raise ConfigurationError(
                f"{_where(name, from_env)} is {value!r}; it must be {what}"
            ) from None
        if not math.isfinite(number) or number < 0 or (number == 0 and not allow_zero):
            bound = ">= 0" if allow_zero else "> 0"
            raise ConfigurationError(
                f"{_where(name, from_env)} is {value!r}; it must be {what} {bound}"
            )
        return number

    return parse


def _parse_names(name: str, value: object, from_env: bool) -> tuple[Any, ...]:
    if isinstance(value, str):
        return tuple(part.strip() for part in value.split(",") if part.strip())
    if isinstance(value, Iterable):
        items = tuple(value)
        for item in items:
            if isinstance(item, str) and not item.strip():
                raise ConfigurationError(f"{_where(name, from_env)} has an empty name")
        return items
    raise ConfigurationError(
        f"{_where(name, from_env)} is {value!r}; give a list of names"
    )


def _parse_exporters(name: str, value: object, from_env: bool) -> tuple[Any, ...]:
    from .exporters import check_exporter_spec

    items = _parse_names(name, value, from_env)
    for item in items:
        try:
            check_exporter_spec(item)
        except (TypeError, ValueError) as exc:
            raise ConfigurationError(f"{_where(name, from_env)}: {exc}") from None
    return items


def _parse_integrations(name: str, value: object, from_env: bool) -> tuple[str, ...]:
    from .integrations import REGISTRY

    items = _parse_names(name, value, from_env)
    unknown = [item for item in items if item not in REGISTRY]
    if unknown:
        raise ConfigurationError(
            f"{_where(name, from_env)}: unknown integration(s) {', '.join(map(repr, unknown))}; "
            f"known integrations: {', '.join(sorted(REGISTRY))}"
        )
    return items


def _parse_address(name: str, value: object, from_env: bool) -> tuple[str, int]:
    """``host:port`` (``[v6]:port`` for IPv6) into a (host, port) pair."""
    if isinstance(value, tuple) and len(value) == 2:
        value = f"{value[0]}:{value[1]}"
    text = value.strip() if isinstance(value, str) else None
    host, _, port = (text or "").rpartition(":")
    host = host[1:-1] if host.startswith("[") and host.endswith("]") else host
    if not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ConfigurationError(
            f"{_where(name, from_env)} is {value!r}; it must be host:port, e.g. 127.0.0.1:8125"
        )
    return host, int(port)


def _parse_url(name: str, value: object, from_env: bool) -> str:
    text = value.strip() if isinstance(value, str) else ""
    if not (text.startswith("http://") or text.startswith("https://")) or len(text) <= len("https://"):
        raise ConfigurationError(
            f"{_where(name, from_env)} is {value!r}; it must be an http:// or https:// URL"
        )
    return text


def _parse_headers(name: str, value: object, from_env: bool) -> tuple[tuple[str, str], ...]:
    """``key=value,key2=value2`` (or a mapping) into header pairs. Values are never echoed."""
    if isinstance(value, dict):
        pairs = [(str(k), str(v)) for k, v in value.items()]
    elif isinstance(value, str):
        pairs = []
        for item in value.split(","):
            if not item.strip():
                continue
            key, sep, val = item.partition("=")
            if not sep or not key.strip():
                raise ConfigurationError(
                    f"{_where(name, from_env)} has an entry without 'key=value' (entry {len(pairs) + 1})"
                )
            pairs.append((key.strip(), val.strip()))
    else:
        raise ConfigurationError(f"{_where(name, from_env)} must be key=value pairs separated by commas")
    return tuple(pairs)


def _parse_path(name: str, value: object, from_env: bool) -> str:
    if isinstance(value, os.PathLike):
        value = os.fspath(value)
    if not isinstance(value, str) or not value:
        raise ConfigurationError(
            f"{_where(name, from_env)} is {value!r}; it must be a file path"
        )
    return value


def _parse_classic_buckets(name: str, value: object, from_env: bool) -> dict[str, tuple[float, ...]]:
    """``KEY=b1,b2,...;KEY2=...`` (or a mapping of KEY to numbers) into ascending boundaries
    per KEY, a metric name or ``unit:UNIT``."""
    where = _where(name, from_env)
    if isinstance(value, str):
        entries: list[tuple[object, Any]] = []
        for item in value.split(";"):
            if item.strip():
                name_or_unit, sep, listed = item.partition("=")
                if not sep:
                    raise ConfigurationError(f"{where} has an entry without 'name=b1,b2,...': {item.strip()!r}")
                entries.append((name_or_unit, listed.split(",")))
    elif isinstance(value, Mapping):
        entries = list(value.items())
    else:
        raise ConfigurationError(f"{where} is {value!r}; give {{name or 'unit:UNIT': [boundaries]}}")
    found = {}
    for raw_key, bounds in entries:
        key = str(raw_key).strip()
        if not key or key == "unit:":
            raise ConfigurationError(f"{where} has an entry without a metric name or unit")
        try:
            numbers = sorted(float(b) for b in bounds)
        except (TypeError, ValueError):
            raise ConfigurationError(f"{where}: the boundaries of {key!r} must be numbers, got {bounds!r}") from None
        if not numbers or not all(map(math.isfinite, numbers)) or len(set(numbers)) != len(numbers):
            raise ConfigurationError(
                f"{where}: the boundaries of {key!r} must be distinct finite numbers, at least one, got {bounds!r}"
            )
        found[key] = tuple(numbers)
    return found


def _parse_resource(name: str, value: object, from_env: bool) -> dict[str, str]:
    """``key=value,...`` (values percent-decoded, as ``OTEL_RESOURCE_ATTRIBUTES``) or a mapping."""
    where = _where(name, from_env)
    if isinstance(value, str):
        for item in value.split(","):
            if item.strip() and ("=" not in item or not item.partition("=")[0].strip()):
                raise ConfigurationError(f"{where} has an entry without 'key=value': {item.strip()!r}")
        return parse_pairs(value)
    if isinstance(value, Mapping):
        found = {str(key).strip(): str(text) for key, text in value.items()}
        if not all(found):
            raise ConfigurationError(f"{where} has an attribute without a name")
        return found
    raise ConfigurationError(f"{where} is {value!r}; give key=value pairs or a mapping")


def option(default: Any, parse: Parser, help: str, *, shown: str | None = None, secret: bool = False) -> Any:
    """A `Config` option (typed ``Any``, so each attribute keeps its annotated type)."""
    return Option(default, parse, help, shown=shown, secret=secret)


class Config:
    """The options in effect. Each field is one option, declared once, here: its name is
    the `configure()` keyword and, upper-cased behind ``INSTRUMENT_``, the environment
    variable; the order is the documentation's. The environment parsing, `configure()`'s
    checks and the table in docs/configuration.md (a test compares them) derive from
    these fields."""

    enabled: bool = option(
        True, _parse_bool,
        "`false` is a kill switch: decorators applied while disabled return the function unchanged; "
        "`count()`/`record()`/`gauge()` return at once; nothing is exported",
    )
    extensions: dict[str, Any]  # options that exporters declare: name -> value

    exporters: tuple[Any, ...] = option(
        (), _parse_exporters,
        "comma-separated names (`jsonl,console`); `configure()` also takes exporter objects",
    )
    interval: float = option(10.0, _positive(float), "seconds between exports")
    live_interval: float = option(
        0.1, _positive(float, allow_zero=True),
        "seconds between the times live exporters (`prometheus`) are asked whether they want the records so "
        "far (the Prometheus endpoint: after a scrape asked); `0`: they get batches every `interval`",
    )
    jsonl_path: str = option(
        "./instrument-metrics.jsonl", _parse_path,
        "file the `jsonl` exporter appends to (made absolute when the exporter starts)",
    )
    resource: dict[str, str] = option(
        {}, _parse_resource,
        "resource attributes, `service.name=payments,service.version=1.4,deployment.environment.name=prod`, "
        "over `OTEL_RESOURCE_ATTRIBUTES` and `OTEL_SERVICE_NAME` (see [exporters](exporters.md#resource))",
    )
    runtime_metrics: bool = option(
        True, _parse_bool,
        "process and runtime metrics in every batch: `process.cpu.time`, `process.memory.usage`, "
        "`cpython.gc.collections`, ... (see [exporters](exporters.md#process-and-runtime-metrics))",
    )
    cardinality_limit: int = option(
        2000, _positive(int),
        "tag sets per metric; further ones share one series tagged `otel.metric.overflow=true`, with one warning",
    )
    buffer_size: int = option(262_144, _positive(int), "records one thread may hold before aggregation")
    max_pending: int = option(1_048_576, _positive(int), "records all threads together may hold before aggregation")
    queue_size: int = option(
        8, _positive(int), "batches waiting per exporter; when full the oldest is dropped and counted",
    )
    exit_timeout: float = option(
        5.0, _positive(float, allow_zero=True), "seconds the flush at interpreter exit may take",
    )
    flush_on_sigterm: bool = option(
        False, _parse_bool,
        "while SIGTERM has its default disposition, flush within `exit_timeout` when it arrives, then end by "
        "SIGTERM as before (main thread only; see [design](design.md#exit-and-shutdown))",
        shown="`false` (`true` under `instrument run`)",
    )
    disabled_integrations: tuple[str, ...] = option(
        (), _parse_integrations,
        "integrations `instrument.auto.install()` and `instrument run` leave out, comma-separated",
    )
    websocket_sessions: bool = option(
        False, _parse_bool,
        "ASGI websocket sessions measured as `websocket.server.session.duration`, `websocket.server.messages` and "
        "`websocket.server.active_sessions` (see [ASGI](asgi.md#websocket-sessions)); off, they pass through untouched",
    )
    classic_buckets: dict[str, tuple[float, ...]] = option(
        {}, _parse_classic_buckets,
        "boundaries of classic histogram buckets (Prometheus `le`, OTLP explicit buckets) per metric or per unit: "
        "`http.server.request.duration=0.05,0.1,0.25;unit:By=1024,65536`; others get powers of √2 by unit "
        "(see [exporters](exporters.md#what-your-backend-shows))",
        shown="powers of √2 by unit",
    )
    prometheus_address: tuple[str, int] = option(
        ("127.0.0.1", 9464), _parse_address, "where the `prometheus` exporter serves `/metrics`",
    )
    prometheus_native_max_buckets: int = option(
        0, _positive(int, allow_zero=True),
        "most populated buckets of a native histogram on the `prometheus` endpoint (a wider one is served at a "
        "coarser schema); `0`: no limit, every histogram at its own resolution (1.09 %)",
    )
    prometheus_resource_labels: tuple[str, ...] = option(
        (), _parse_names,
        "resource attributes the `prometheus` endpoint also puts on every series as labels "
        "(`service.name,deployment.environment.name`); all of them are on `target_info`",
    )
    statsd_address: tuple[str, int] = option(
        ("127.0.0.1", 8125), _parse_address, "where `statsd` and `dogstatsd` send datagrams",
    )
    statsd_max_datagram: int = option(
        1432, _positive(int), "largest datagram, in bytes",
    )
    http_url: str | None = option(None, _parse_url, "where the `http` exporter posts batches")
    http_headers: tuple[tuple[str, str], ...] = option(
        (), _parse_headers, "extra request headers, `key=value,...` (never logged)",
        secret=True,
    )
    http_timeout: float = option(10.0, _positive(float), "seconds per HTTP request")

    def __init__(self, extensions: Mapping[str, Any] | None = None, **values: Any) -> None:
        """The options given in *values* (already parsed), the defaults for the others;
        *extensions*: the values of options that exporters declare (see `option`)."""
        unknown = set(values) - _BY_NAME.keys()
        if unknown:
            raise TypeError(f"unknown option(s): {', '.join(sorted(unknown))}")
        for option in OPTIONS:
            self.__dict__[option.name] = values.get(option.name, option.default)
        self.__dict__["extensions"] = dict(extensions or {})

    def option(self, name: str, default: Any = None) -> Any:
        """The value of option *name*: one of instrument's, or one an exporter declares
        (*default* when not set)."""
        if name in _BY_NAME:
            return getattr(self, name)
        return self.extensions.get(name, default)

    def __repr__(self) -> str:
        body = ", ".join(
            f"{o.name}={'<hidden>' if o.secret else repr(getattr(self, o.name))}" for o in OPTIONS
        )
        return f"Config({body})"

    def values(self, names: Iterable[str | Option]) -> tuple[Any, ...]:
        """The values of the options *names* (those an exporter is built from)."""
        return tuple(self.option(n if isinstance(n, str) else n.name) for n in names)


OPTIONS: tuple[Option, ...] = tuple(v for v in vars(Config).values() if isinstance(v, Option))
_BY_NAME = {f.name: f for f in OPTIONS}


def from_environ(environ: Mapping[str, str]) -> dict[str, Any]:
    """The options set through `INSTRUMENT_*` variables, parsed and checked."""
    values = {}
    for option in OPTIONS:
        raw = environ.get(ENV_PREFIX + option.name.upper())
        if raw is not None and raw.strip() != "":
            values[option.name] = option.parse(option.name, raw, True)
    return values


def from_arguments(arguments: Mapping[str, object]) -> dict[str, Any]:
    """The options given to `configure()`, parsed and checked."""
    unknown = sorted(set(arguments) - set(_BY_NAME))
    if unknown:
        raise TypeError(
            f"configure() got unknown option(s) {', '.join(map(repr, unknown))}; "
            f"known options: {', '.join(_BY_NAME)}"
        )
    return {name: _BY_NAME[name].parse(name, value, False) for name, value in arguments.items()}


class Settings:
    """Holds the layers (environment, `configure()` calls) and the merged Config.

    Options that third-party exporters declare (their ``options``) are known only once
    their classes are loaded: `prepare` and `resolve` load those of the configured
    exporters and read their values from the arguments and the environment.
    """

    def __init__(self, environ: Mapping[str, str]) -> None:
        self.reload(environ)

    def reload(self, environ: Mapping[str, str]) -> None:
        """Forget `configure()` calls; read the variables again. A bad one is kept in
        `error`, for the runtime to report when it starts (import never raises)."""
        self.error: ConfigurationError | None = None
        self._environ = dict(environ)
        try:
            self.environment = from_environ(environ)
        except ConfigurationError as exc:
            self.error = exc
            self.environment = {}
        self.arguments: dict[str, Any] = {}  # configure()'s, parsed: instrument's and exporters' options
        self.current = Config(**self.environment)

    def prepare(self, arguments: Mapping[str, object]) -> tuple[dict[str, Any], Config]:
        """Check new `configure()` arguments and merge them over the earlier ones: the
        merged arguments (for `commit`) and the Config they make."""
        core = {name: value for name, value in arguments.items() if name in _BY_NAME}
        merged = {**self.arguments, **from_arguments(core)}
        declared = _declared(merged.get("exporters", self.environment.get("exporters", ())))
        unknown = sorted(set(arguments) - set(core) - set(declared))
        if unknown:
            raise TypeError(
                f"configure() got unknown option(s) {', '.join(map(repr, unknown))}; "
                f"known options: {', '.join([*_BY_NAME, *declared])}"
            )
        for name in set(arguments) & set(declared):
            merged[name] = _parse_declared(declared[name], arguments[name], False)
        extensions = self._extensions(declared, merged)
        return merged, Config(extensions, **{**self.environment, **{k: v for k, v in merged.items() if k in _BY_NAME}})

    def commit(self, arguments: dict[str, Any], config: Config) -> None:
        self.arguments = arguments
        self.current = config

    def resolve(self) -> None:
        """Read the options the configured exporters declare (at start: their classes may
        load only then), from the `configure()` arguments and the environment."""
        declared = _declared(self.current.exporters)
        if declared.keys() - self.current.extensions.keys():
            values = {option.name: getattr(self.current, option.name) for option in OPTIONS}
            self.current = Config(self._extensions(declared, self.arguments), **values)

    def _extensions(self, declared: Mapping[str, Option], arguments: Mapping[str, Any]) -> dict[str, Any]:
        found = {}
        for name, option in declared.items():
            if name in arguments:
                found[name] = arguments[name]
                continue
            raw = self._environ.get(ENV_PREFIX + name.upper())
            found[name] = _parse_declared(option, raw, True) if raw is not None and raw.strip() else option.default
        return found


def _parse_declared(option: Option, value: object, from_env: bool) -> Any:
    """An exporter's parser's verdict; its ValueError becomes a `ConfigurationError`."""
    try:
        return option.parse(option.name, value, from_env)
    except ConfigurationError:
        raise
    except (TypeError, ValueError) as exc:
        raise ConfigurationError(str(exc)) from None


def _declared(exporters: Iterable[Any]) -> dict[str, Option]:
    """The options the classes of these exporters declare (`Option` objects in their
    ``options``), by name; instrument's own options they name are left out."""
    from .exporters import declared_options

    found = declared_options(exporters)
    clash = sorted(found.keys() & _BY_NAME.keys())
    if clash:
        raise ConfigurationError(f"an exporter declares option(s) {', '.join(clash)}, which instrument has already")
    return found


settings = Settings(os.environ)
