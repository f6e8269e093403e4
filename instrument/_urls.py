"""What instrument takes from a URL: its host and port for tags, a redacted form for messages.

Never more: user info (``user:password@``), the query string and the fragment may hold
credentials, and paths are unbounded, so none of them becomes a tag, and only the path
survives into a message (an exporter's endpoint, say). Used by the HTTP client
integrations (`hostport`, on every request) and the http and otlp exporters (`redact`).
"""

from __future__ import annotations

DEFAULT_PORTS = {"http": 80, "https": 443}


def hostport(url: str) -> tuple[str, int]:
    """Host (lower case, IPv6 without brackets) and port of *url*, without user info, path or query.

    The port is the scheme's default when the URL has none (0 for an unknown scheme).
    String splitting rather than `urllib.parse.urlsplit`, which costs several
    microseconds per request; anything unusual falls back to it.
    """
    scheme, sep, rest = url.partition("://")
    if not sep:
        return _hostport_parsed(url)
    netloc = rest
    for stop in "/?#":
        netloc = netloc.partition(stop)[0]
    netloc = netloc.rpartition("@")[2]
    if netloc.startswith("["):
        host, _, tail = netloc[1:].partition("]")
        port = tail[1:] if tail.startswith(":") else ""
    else:
        host, _, port = netloc.partition(":")
    if port and not port.isdigit():
        return _hostport_parsed(url)
    return host.lower(), int(port) if port else DEFAULT_PORTS.get(scheme.lower(), 0)


def _hostport_parsed(url: str) -> tuple[str, int]:
    """`hostport` by `urllib.parse.urlsplit`: the reference the fast path must agree with."""
    from urllib.parse import urlsplit

    parts = urlsplit(url)
    try:
        port = parts.port
    except ValueError:
        port = None
    return parts.hostname or "", port or DEFAULT_PORTS.get(parts.scheme, 0)


def redact(url: str) -> str:
    """*url* as a message may show it: ``scheme://host:port/path``, nothing else.

    User info, query and fragment are dropped; an IPv6 host keeps its brackets; a port
    that is not a number is dropped; an endpoint written without a scheme
    (``collector:4317``) is shown without one. ``<unparsable URL>`` when even the host
    cannot be read (an unclosed ``[``).
    """
    from urllib.parse import urlsplit

    try:
        parts = urlsplit(url if "://" in url or url.startswith("//") else "//" + url)
        host = parts.hostname or ""
    except ValueError:
        return "<unparsable URL>"
    try:
        port = f":{parts.port}" if parts.port is not None else ""
    except ValueError:
        port = ""
    if ":" in host:
        host = f"[{host}]"
    scheme = f"{parts.scheme}://" if parts.scheme else ""
    return f"{scheme}{host}{port}{parts.path}"
