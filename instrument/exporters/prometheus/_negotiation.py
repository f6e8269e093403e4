"""Content negotiation: which format and encoding a scraper's request headers ask for.

Prometheus asks for OpenMetrics first (``Accept: application/openmetrics-text;
version=1.0.0, text/plain;version=0.0.4;q=0.5, ...``), or the protobuf format first
when native histograms are enabled, and takes gzip; curl and older
scrapers ask for nothing in particular and get the text format, uncompressed. As
prometheus_client's ``choose_encoder`` and ``gzip_accepted``, kept apart from the
formats (`_text`) and the server (`_endpoint`).
"""

from __future__ import annotations

__all__ = ["OPENMETRICS", "PROTOBUF", "TEXT", "accepts_gzip", "choose_format"]

PROTOBUF, OPENMETRICS, TEXT = "protobuf", "openmetrics", "text"
_PROTOBUF_MEDIA = "application/vnd.google.protobuf"
_PROTOBUF_PROTO = "io.prometheus.client.MetricFamily"


def choose_format(accept: str) -> str:
    """`PROTOBUF`, `OPENMETRICS` or `TEXT`: the format an ``Accept`` header prefers.

    The highest quality wins; on a tie, the protobuf format (only it carries native
    histograms), then OpenMetrics, then text. Protobuf is chosen only when asked for
    by name, with ``proto=io.prometheus.client.MetricFamily`` and ``encoding=delimited``
    (the only encoding served); anything else gets text.
    """
    best = {PROTOBUF: 0.0, OPENMETRICS: 0.0, TEXT: 0.0}
    for entry in accept.split(","):
        media, *parameters = (part.strip() for part in entry.split(";"))
        quality, named = 1.0, {}
        for parameter in parameters:
            key, _, value = parameter.partition("=")
            key, value = key.strip().lower(), value.strip().strip('"')
            if key == "q":
                try:
                    quality = float(value)
                except ValueError:
                    quality = 0.0
            else:
                named[key] = value
        media = media.lower()
        if media == _PROTOBUF_MEDIA:
            if named.get("proto") == _PROTOBUF_PROTO and named.get("encoding") == "delimited":
                best[PROTOBUF] = max(best[PROTOBUF], quality)
        elif media == "application/openmetrics-text" and named.get("version") in (None, "0.0.1", "1.0.0"):
            best[OPENMETRICS] = max(best[OPENMETRICS], quality)
        elif media in ("text/plain", "text/*", "*/*"):
            best[TEXT] = max(best[TEXT], quality)
    chosen = max((PROTOBUF, OPENMETRICS, TEXT), key=lambda name: best[name])  # first of the best
    return chosen if best[chosen] > 0 else TEXT


def accepts_gzip(header: str) -> bool:
    """Whether an ``Accept-Encoding`` header takes gzip (named, and not with ``q=0``)."""
    for entry in header.split(","):
        coding, _, quality = entry.strip().partition(";")
        if coding.strip().lower() == "gzip":
            return quality.strip().replace(" ", "") not in ("q=0", "q=0.0", "q=0.00", "q=0.000")
    return False
