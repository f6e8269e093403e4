"""The resource: what the metrics of this process describe (service, version, environment).

OpenTelemetry's resource attributes, from, in increasing precedence:
``OTEL_RESOURCE_ATTRIBUTES`` (``key=value,...``, values percent-decoded),
``OTEL_SERVICE_NAME`` (``service.name``) and the ``resource`` option
(``configure(resource={...})`` or ``INSTRUMENT_RESOURCE``). Each exporter shows them
its backend's way: the OTLP resource, ``target_info`` at the Prometheus endpoint,
constant tags in DogStatsD, a field of each jsonl line, the header of
``instrument report``.

`attributes` holds what was set, nothing more: backends add their defaults (the
OpenTelemetry SDK its ``service.name`` and ``telemetry.sdk.*``, Prometheus ``job``
and ``instance``).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from urllib.parse import unquote

__all__ = ["attributes", "parse_pairs"]


def parse_pairs(text: str) -> dict[str, str]:
    """``key=value,key2=value2`` (W3C baggage form, as ``OTEL_RESOURCE_ATTRIBUTES``): values
    percent-decoded; entries without ``=`` or a key are skipped, as the SDK does."""
    found = {}
    for item in text.split(","):
        key, sep, value = item.partition("=")
        if sep and key.strip():
            found[key.strip()] = unquote(value.strip())
    return found


def attributes(configured: Mapping[str, str], environ: Mapping[str, str] | None = None) -> dict[str, str]:
    """The resource attributes set for this process: the environment's, then *configured*'s."""
    environ = os.environ if environ is None else environ
    found = parse_pairs(environ.get("OTEL_RESOURCE_ATTRIBUTES", ""))
    service = environ.get("OTEL_SERVICE_NAME", "").strip()
    if service:
        found["service.name"] = service
    found.update(configured)
    return found
