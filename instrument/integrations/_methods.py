"""HTTP request methods as OpenTelemetry tags them, for servers and clients alike.

A known method is its own tag; anything else is ``_OTHER``, so a client or a scanner
sending made-up methods cannot create series without bound. Methods are case-sensitive
(RFC 9110): ``get`` is not ``GET``, so it is ``_OTHER``.
"""

from __future__ import annotations

KNOWN_METHODS = frozenset({"CONNECT", "DELETE", "GET", "HEAD", "OPTIONS", "PATCH", "POST", "PUT", "TRACE"})

# The common case in one dict lookup, before any call: ``METHOD_TAGS.get(m) or method_tag(m)``.
METHOD_TAGS: dict[object, str] = {method: method for method in KNOWN_METHODS}


def method_tag(method: object) -> str:
    """The tag of *method* (a str or bytes): itself if it is a known method, else ``_OTHER``."""
    if isinstance(method, bytes):
        method = method.decode("ascii", "replace")
    text = str(method)
    return text if text in KNOWN_METHODS else "_OTHER"
