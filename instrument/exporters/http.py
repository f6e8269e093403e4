"""`http`: each batch POSTed as one gzip-compressed JSON document to ``http_url``.

The document (``"schema": "instrument.batch/1"``, documented in docs/exporters.md)
holds a small resource (service name, pid, host name), the interval, the batch's
sequence number and one `Point.as_dict()` object per series, the jsonl schema.

Delivery is bounded. Connection errors, timeouts, 429 and 5xx are retried with
exponential backoff and full jitter, or after the server's ``Retry-After``; at most
`MAX_ATTEMPTS` attempts, and no wait that would end past the retry budget (the
export interval), so a dead backend cannot pile up work. Any other answer (a 4xx,
a redirect) is not retried and is logged once. In every failing case `export()`
raises, and the worker counts the failure in ``instrument.export.failures``.

Header values (``http_headers``, often credentials) are sent and never shown: not in
logs, reprs or exception messages. Messages show the URL without user info, query
or fragment.
"""

from __future__ import annotations

import gzip
import json
import math
import os
import random
import socket
import sys
import threading
from collections.abc import Mapping
from datetime import UTC
from email.utils import parsedate_to_datetime
from time import monotonic, time
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import requests

from .. import _log
from .._config import ConfigurationError
from .._model import Batch
from .._urls import redact
from . import Exporter, ExportError, import_what_requests_imports_late
from ._unexportable import json_lines

if TYPE_CHECKING:
    from .._config import Config

__all__ = ["MAX_ATTEMPTS", "SCHEMA", "HttpExportError", "HttpExporter", "encode", "retry_after_seconds"]

SCHEMA = "instrument.batch/1"
MAX_ATTEMPTS = 5
BACKOFF_BASE = 0.5  # seconds: retry n waits uniform(0, min(BACKOFF_CAP, BACKOFF_BASE * 2 ** (n - 1)))
BACKOFF_CAP = 8.0
MIN_ATTEMPT_TIMEOUT = 0.1  # seconds: a retry late in the budget still gets this long
_BODY_LINE_CHARS = 200


class HttpExportError(ExportError, RuntimeError):
    """The endpoint did not accept a batch; the message says why (never a header value)."""


class HttpExporter(Exporter):
    """POSTs each batch as JSON to ``config.http_url``, with bounded retries."""

    name = "http"
    options = ("http_url", "http_headers", "http_timeout", "interval")  # interval: the retry budget

    def __init__(self, config: Config | None = None) -> None:
        super().__init__(config)
        if config is None or not config.http_url:
            raise ConfigurationError(
                "the http exporter needs a URL: set INSTRUMENT_HTTP_URL or configure(http_url=...)"
            )
        import_what_requests_imports_late()
        self.url = config.http_url
        self.where = redact(self.url)
        self.timeout = config.http_timeout
        self.budget = config.interval
        self._headers = {
            "Content-Type": "application/json",
            "Content-Encoding": "gzip",
            "User-Agent": f"instrument/{_version()}",
            **dict(config.http_headers),
        }
        self._closed = threading.Event()
        self._pid = -1
        self._session: requests.Session | None = None
        self._resource: dict[str, Any] = {}

    def __repr__(self) -> str:
        return f"<HttpExporter {self.where} headers={sorted(self._headers)}>"

    def _for_this_process(self) -> requests.Session:
        """The session and resource of the calling process (a forked child gets its own)."""
        if self._session is None or self._pid != os.getpid():
            self._pid = os.getpid()
            self._session = requests.Session()
            self._session.headers.update(self._headers)
            self._resource = resource()
        return self._session

    def export(self, batch: Batch) -> None:
        if not batch.points:
            return
        session = self._for_this_process()
        self._send(session, gzip.compress(encode(batch, self._resource, self.name), compresslevel=6, mtime=0))

    def _send(self, session: requests.Session, body: bytes) -> None:
        deadline = monotonic() + self.budget
        for attempt in range(1, MAX_ATTEMPTS + 1):
            timeout = self.timeout
            if attempt > 1:  # a retry gets what is left of the budget
                timeout = max(MIN_ATTEMPT_TIMEOUT, min(self.timeout, deadline - monotonic()))
            retry_after = None
            try:
                response = session.post(self.url, data=body, timeout=timeout, allow_redirects=False)
            except (requests.ConnectionError, requests.Timeout) as exc:
                problem = f"{type(exc).__name__}: {self._scrub(str(exc))}"
            except requests.RequestException as exc:
                raise HttpExportError(f"POST to {self.where} failed: {type(exc).__name__}: {self._scrub(str(exc))}") \
                    from None
            else:
                status = response.status_code
                if 200 <= status < 300:
                    _log.forget(("http", "rejected", self.where))
                    return
                if status != 429 and not 500 <= status < 600:
                    self._rejected(status, first_line(response.content))
                problem = f"HTTP {status}"
                retry_after = retry_after_seconds(response.headers.get("Retry-After"))
            if attempt == MAX_ATTEMPTS:
                break
            delay = retry_after if retry_after is not None else random.uniform(
                0.0, min(BACKOFF_CAP, BACKOFF_BASE * 2 ** (attempt - 1))
            )
            if monotonic() + delay >= deadline:
                asked = f"; the server asked to retry after {retry_after:g}s" if retry_after is not None else ""
                raise HttpExportError(
                    f"POST to {self.where} failed after {attempt} attempt(s) ({problem}): the retry budget of "
                    f"{self.budget:g}s (the export interval) is spent{asked}"
                )
            if self._closed.wait(delay):
                raise HttpExportError(f"POST to {self.where} abandoned at shutdown ({problem})")
        raise HttpExportError(f"POST to {self.where} failed after {MAX_ATTEMPTS} attempts ({problem})")

    def _rejected(self, status: int, line: str) -> None:
        """A final answer: log it once (until a batch gets through) and raise."""
        _log.error_once(
            ("http", "rejected", self.where),
            "instrument: %s rejected a batch with HTTP %d: %s (not retried)",
            self.where,
            status,
            line,
        )
        raise HttpExportError(f"POST to {self.where} answered HTTP {status}: {line} (not retried)")

    def _scrub(self, text: str) -> str:
        """*text* (an exception message) without the URL's query, which may hold a token."""
        query = urlsplit(self.url).query
        return text.replace(query, "<query>") if query else text

    def shutdown(self) -> None:
        self._closed.set()
        if self._session is not None:
            self._session.close()


def encode(batch: Batch, resource: Mapping[str, Any], exporter: str = "http") -> bytes:
    """The ``instrument.batch/1`` JSON document for *batch*, as UTF-8.

    A point with a number JSON cannot hold (a sum beyond float range) is left out and
    counted (`_unexportable`); the rest of the batch goes.
    """
    head = json.dumps(
        {
            "schema": SCHEMA,
            "resource": dict(resource),
            "seq": batch.seq,
            "start_time": batch.start_time,
            "end_time": batch.end_time,
        },
        separators=(",", ":"),
    )
    points = ",".join(json_lines(exporter, batch.points))
    return f'{head[:-1]},"points":[{points}]}}'.encode()

def resource() -> dict[str, Any]:
    """Who sent a batch: ``service.name`` (OTEL_SERVICE_NAME, else the program's name), pid, host."""
    program = os.path.basename(sys.argv[0]) if sys.argv and sys.argv[0] else ""
    return {
        "service.name": os.environ.get("OTEL_SERVICE_NAME") or program or "python",
        "pid": os.getpid(),
        "host.name": socket.gethostname(),
    }


def retry_after_seconds(value: str | None) -> float | None:
    """Seconds to wait from a ``Retry-After`` value (seconds or an HTTP date); None if absent or invalid."""
    if value is None or not value.strip():
        return None
    value = value.strip()
    try:
        seconds = float(value)
    except ValueError:
        try:
            when = parsedate_to_datetime(value)
        except (TypeError, ValueError, IndexError):
            return None
        if when.tzinfo is None:  # "-0000": UTC by RFC 5322, not local time
            when = when.replace(tzinfo=UTC)
        return max(0.0, when.timestamp() - time())
    return seconds if math.isfinite(seconds) and seconds >= 0 else None


def first_line(body: bytes) -> str:
    """The first non-empty line of a response body, shortened, for messages."""
    for line in body[:4096].decode("utf-8", "replace").splitlines():
        if line.strip():
            line = line.strip()
            return line if len(line) <= _BODY_LINE_CHARS else line[:_BODY_LINE_CHARS] + "..."
    return "(empty body)"


def _version() -> str:
    from .. import __version__

    return __version__
