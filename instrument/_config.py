"""Configuration: `configure()` arguments > `INSTRUMENT_*` variables > defaults.

Every option has one name: the keyword argument of `configure()` and, upper-cased
behind ``INSTRUMENT_``, the environment variable. Values are checked when they are
given (at `configure()` or at import for the environment), never on the hot path.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Iterable, Mapping
from typing import Any

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


def _positive(kind: type, *, allow_zero: bool = False) -> Callable[[str, object, bool], Any]:
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


# name -> (parser, default). The order is the documentation order.
OPTIONS: dict[str, tuple[Callable[[str, object, bool], Any], Any]] = {
    "enabled": (_parse_bool, True),
    "exporters": (_parse_exporters, ()),
    "interval": (_positive(float), 10.0),
    "jsonl_path": (_parse_path, "./instrument-metrics.jsonl"),
    "cardinality_limit": (_positive(int), 2000),
    "buffer_size": (_positive(int), 262_144),
    "max_pending": (_positive(int), 1_048_576),
    "queue_size": (_positive(int), 8),
    "exit_timeout": (_positive(float, allow_zero=True), 5.0),
    "flush_on_sigterm": (_parse_bool, False),
    "disabled_integrations": (_parse_integrations, ()),
    "prometheus_address": (_parse_address, ("127.0.0.1", 9464)),
    "statsd_address": (_parse_address, ("127.0.0.1", 8125)),
    "statsd_max_datagram": (_positive(int), 1432),
    "http_url": (_parse_url, None),
    "http_headers": (_parse_headers, ()),
    "http_timeout": (_positive(float), 10.0),
}


class Config:
    """The options in effect: one attribute per option name."""

    enabled: bool
    exporters: tuple[Any, ...]
    interval: float
    jsonl_path: str
    cardinality_limit: int
    buffer_size: int
    max_pending: int
    queue_size: int
    exit_timeout: float
    flush_on_sigterm: bool
    disabled_integrations: tuple[str, ...]
    prometheus_address: tuple[str, int]
    statsd_address: tuple[str, int]
    statsd_max_datagram: int
    http_url: str | None
    http_headers: tuple[tuple[str, str], ...]
    http_timeout: float

    def __init__(self, values: Mapping[str, Any]) -> None:
        for name, (_, default) in OPTIONS.items():
            setattr(self, name, values.get(name, default))

    def __repr__(self) -> str:
        body = ", ".join(
            f"{name}={'<hidden>' if name == 'http_headers' else repr(getattr(self, name))}" for name in OPTIONS
        )
        return f"Config({body})"


def from_environ(environ: Mapping[str, str]) -> dict[str, Any]:
    """The options set through `INSTRUMENT_*` variables, parsed and checked."""
    values = {}
    for name, (parse, _) in OPTIONS.items():
        raw = environ.get(ENV_PREFIX + name.upper())
        if raw is not None and raw.strip() != "":
            values[name] = parse(name, raw, True)
    return values


def from_arguments(arguments: Mapping[str, object]) -> dict[str, Any]:
    """The options given to `configure()`, parsed and checked."""
    unknown = sorted(set(arguments) - set(OPTIONS))
    if unknown:
        raise TypeError(
            f"configure() got unknown option(s) {', '.join(map(repr, unknown))}; "
            f"known options: {', '.join(OPTIONS)}"
        )
    return {name: OPTIONS[name][0](name, value, False) for name, value in arguments.items()}


class Settings:
    """Holds the layers (environment, `configure()` calls) and the merged Config."""

    def __init__(self, environ: Mapping[str, str]) -> None:
        self.reload(environ)

    def reload(self, environ: Mapping[str, str]) -> None:
        """Forget `configure()` calls; read the variables again. A bad one is kept in
        `error`, for the runtime to report when it starts (import never raises)."""
        self.error: ConfigurationError | None = None
        try:
            self.environment = from_environ(environ)
        except ConfigurationError as exc:
            self.error = exc
            self.environment = {}
        self.arguments: dict[str, Any] = {}
        self.current = Config(self.environment)

    def prepare(self, arguments: Mapping[str, object]) -> tuple[dict[str, Any], Config]:
        """Check new `configure()` arguments and merge them over the earlier ones."""
        merged = {**self.arguments, **from_arguments(arguments)}
        return merged, Config({**self.environment, **merged})

    def commit(self, arguments: dict[str, Any], config: Config) -> None:
        self.arguments = arguments
        self.current = config


settings = Settings(os.environ)
