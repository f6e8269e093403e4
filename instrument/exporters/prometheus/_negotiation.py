"""Content negotiation: which format and encoding a scraper's request headers ask for.

Prometheus asks for OpenMetrics first (``Accept: application/openmetrics-text;
version=1.0.0, text/plain;version=0.0.4;q=0.5, ...``) and takes gzip; curl and older
scrapers ask for nothing in particular and get the text format, uncompressed. As
prometheus_client's ``choose_encoder`` and ``gzip_accepted``, kept apart from the
formats (`_text`) and the server (`_endpoint`).
"""

from __future__ import annotations

__all__ = ["accepts_gzip", "wants_openmetrics"]


def wants_openmetrics(accept: str) -> bool:
    """Whether an ``Accept`` header prefers OpenMetrics 1.0 to the text format."""
    best_openmetrics = best_text = 0.0
    for entry in accept.split(","):
        media, *parameters = (part.strip() for part in entry.split(";"))
        quality, version = 1.0, None
        for parameter in parameters:
            key, _, value = parameter.partition("=")
            key, value = key.strip().lower(), value.strip().strip('"')
            if key == "q":
                try:
                    quality = float(value)
                except ValueError:
                    quality = 0.0
            elif key == "version":
                version = value
        media = media.lower()
        if media == "application/openmetrics-text" and version in (None, "0.0.1", "1.0.0"):
            best_openmetrics = max(best_openmetrics, quality)
        elif media in ("text/plain", "text/*", "*/*"):
            best_text = max(best_text, quality)
    return best_openmetrics > 0 and best_openmetrics >= best_text


def accepts_gzip(header: str) -> bool:
    """Whether an ``Accept-Encoding`` header takes gzip (named, and not with ``q=0``)."""
    for entry in header.split(","):
        coding, _, quality = entry.strip().partition(";")
        if coding.strip().lower() == "gzip":
            return quality.strip().replace(" ", "") not in ("q=0", "q=0.0", "q=0.00", "q=0.000")
    return False
