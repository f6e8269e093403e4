"""`statsd` and `dogstatsd`: text lines over UDP to a StatsD server or a Datadog agent.

Each batch becomes lines (``name:value|type``) packed into datagrams of at most
``statsd_max_datagram`` bytes, sent from one connected, non-blocking UDP socket to
``statsd_address`` (resolved once, at construction; IPv4 or IPv6).

- Counters: ``name:increase|c``, the interval's increase, exact at the server.
- Gauges: ``name:value|g``. StatsD reads a leading sign as a change of the current
  value, so plain StatsD gets a negative value as the pair ``name:0|g`` then
  ``name:-5|g``, always in one datagram; DogStatsD has no relative gauges and gets
  ``name:-5|g``.
- Histograms and timers are aggregated here, so the server gets back one value per
  recorded value, each standing in for the recorded value it replaces: the exact
  minimum and maximum, and for every other value the geometric middle of its bucket
  (rounded to 6 significant digits, kept within [min, max]). Buckets span 1.09 %, so
  each value sent is within 0.55 % of the one it replaces and the order of values is
  kept: counts are exact, and any percentile the server computes is within 0.55 % of
  the true percentile of what was recorded.

  StatsD computes percentiles over the values it receives and applies a sample rate
  only to the count, so plain StatsD gets every value, several per line
  (``name:12.3|ms:12.5|ms``); time units become milliseconds. DogStatsD weights a value
  by its sample rate, so it gets each distinct value once as a distribution, with
  ``|@1/n`` standing for n values and values of equal weight packed on one line
  (protocol v1.1: ``name:0.0123:0.0125|d|#tag:value``), in the metric's own unit
  (seconds for timers).

Send errors (a full socket buffer that does not drain in time, ``ECONNREFUSED``
reported by the kernel after an ICMP "port unreachable" for an earlier datagram) do
not stop the rest of the batch: every datagram is tried, then `export` raises, which
counts the batch in ``instrument.export.failures``.
"""

from __future__ import annotations

import math
import os
import re
import select
import socket
from collections.abc import Iterable, Iterator, Mapping
from decimal import Decimal
from functools import lru_cache
from operator import itemgetter
from time import monotonic
from typing import TYPE_CHECKING, Any

from .._buckets import middle
from .._histogram import HistogramData
from .._model import Batch, Kind, Point
from .._resource import attributes
from . import Exporter, ExportError
from ._unexportable import drop, finite

if TYPE_CHECKING:
    from .._config import Config

__all__ = ["DogStatsdExporter", "StatsdExportError", "StatsdExporter"]

DEFAULT_ADDRESS = ("127.0.0.1", 8125)
DEFAULT_MAX_DATAGRAM = 1432

# How long one export may wait, in all, for a full socket send buffer to drain.
SEND_WAIT = 1.0

# StatsD timers are in milliseconds: the factor from each time unit.
_TO_MILLISECONDS = {"s": 1000.0, "ms": 1.0, "us": 1e-3, "ns": 1e-6}

TagItems = tuple[tuple[str, str], ...]


class StatsdExportError(ExportError, OSError):
    """Datagrams of a batch could not be sent (every datagram was still tried)."""


class _UdpLineExporter(Exporter):
    """The transport both flavours share: lines, packed into datagrams, over one socket."""

    options: tuple[str, ...] = ("statsd_address", "statsd_max_datagram")

    def __init__(
        self,
        config: Config | None = None,
        *,
        address: tuple[str, int] | None = None,
        max_datagram: int | None = None,
    ) -> None:
        super().__init__(config)
        self.address = address or (config.statsd_address if config is not None else DEFAULT_ADDRESS)
        self.max_datagram = max_datagram or (
            config.statsd_max_datagram if config is not None else DEFAULT_MAX_DATAGRAM
        )
        self._socket: socket.socket | None = _connect(self.name, self.address)

    def export(self, batch: Batch) -> None:
        lines = []
        for point in batch.points:
            if not finite(point) and point.histogram is None:
                drop(self.name, point, "a value beyond float range")
                continue
            point_lines = list(self._lines(point))
            if any(len(line) > self.max_datagram for line in point_lines):
                drop(self.name, point, f"a line longer than a datagram ({self.max_datagram} bytes); shorten its tags")
                continue
            lines.extend(point_lines)
        if lines:
            self._send_all(list(_pack(lines, self.max_datagram)))

    def shutdown(self) -> None:
        if self._socket is not None:
            self._socket.close()
            self._socket = None

    def _lines(self, point: Point) -> Iterator[bytes]:
        """The lines for one point. Each item stays whole in one datagram, newlines and all."""
        raise NotImplementedError

    def _send_all(self, datagrams: list[bytes]) -> None:
        sock = self._socket
        if sock is None:
            raise RuntimeError(f"{self.name} exporter is shut down; it cannot export any more")
        deadline = monotonic() + SEND_WAIT
        errors = [error for datagram in datagrams for error in _send(sock, datagram, deadline)]
        if errors:
            host, port = self.address
            raise StatsdExportError(
                f"{self.name}: {len(errors)} send error(s) for {len(datagrams)} datagram(s) to "
                f"{host}:{port}; every datagram was tried. First: {errors[0]}"
            )


class StatsdExporter(_UdpLineExporter):
    """Plain StatsD (Etsy's statsd and compatible servers): tags are folded into the name.

    A point ``http.server.request.duration{method=GET, route=/users}`` is sent as
    ``http.server.request.duration.method_GET.route_-users``: tags sorted by key, each
    appended as ``.key_value``. Names and tags are sanitised as Etsy's statsd does
    (whitespace to ``_``, ``/`` to ``-``, anything but letters, digits, ``_``, ``-``
    and ``.`` dropped), and dots inside tag keys and values become ``_`` so a tag stays
    one level of the name.
    """

    name = "statsd"

    def _lines(self, point: Point) -> Iterator[bytes]:
        name = _statsd_name(point.name, _tag_items(point.tags))
        if point.kind == Kind.HISTOGRAM:
            histogram = point.histogram
            if histogram is not None:
                scale = _TO_MILLISECONDS.get(point.unit, 1.0)
                runs = [(f":{_number(value)}|ms".encode(), weight) for value, weight in _stand_ins(histogram, scale)]
                yield from _multi_value_lines(name.encode(), runs, b"", self.max_datagram)
            return
        value = point.value
        if value is None or not math.isfinite(value):
            return
        if point.kind == Kind.COUNTER:
            yield f"{name}:{_number(value)}|c".encode()
        elif value < 0:
            # A signed value changes the current one: set 0 first, in the same datagram.
            yield f"{name}:0|g\n{name}:{_number(value)}|g".encode()
        else:
            yield f"{name}:{_number(value)}|g".encode()


class DogStatsdExporter(_UdpLineExporter):
    """DogStatsD (the Datadog agent): tags as ``|#key:value,...``, histograms as distributions.

    Names keep ASCII letters, digits, ``_`` and ``.`` (anything else becomes ``_``, at
    most 200 characters). Tags are sorted by key; keys keep letters, digits, ``_``,
    ``-``, ``.`` and ``/``, values also ``:``; anything else becomes ``_`` and a tag is
    at most 200 characters. Datadog lower-cases tags itself.
    """

    name = "dogstatsd"
    options = ("statsd_address", "statsd_max_datagram", "resource")

    def __init__(self, config: Config | None = None, *, address: tuple[str, int] | None = None,
                 max_datagram: int | None = None) -> None:
        super().__init__(config, address=address, max_datagram=max_datagram)
        self.constant_tags = constant_tags(attributes(config.resource if config is not None else {}), os.environ)

    def _lines(self, point: Point) -> Iterator[bytes]:
        name = _dogstatsd_name(point.name)
        tags = _dogstatsd_tags(_tag_items({**self.constant_tags, **point.tags}) if self.constant_tags
                               else _tag_items(point.tags))
        if point.kind == Kind.HISTOGRAM:
            histogram = point.histogram
            if histogram is not None:
                yield from self._distribution(name, tags, histogram)
            return
        value = point.value
        if value is None or not math.isfinite(value):
            return
        kind = "c" if point.kind == Kind.COUNTER else "g"
        yield f"{name}:{_number(value)}|{kind}{tags}".encode()

    def _distribution(self, name: str, tags: str, histogram: HistogramData) -> Iterator[bytes]:
        by_weight: dict[int, list[float]] = {}
        for value, weight in _stand_ins(histogram, 1.0):
            by_weight.setdefault(weight, []).append(value)
        for weight in sorted(by_weight):
            rate = "" if weight == 1 else f"|@{_sample_rate(weight)}"
            runs = [(f":{_number(value)}".encode(), 1) for value in by_weight[weight]]
            yield from _multi_value_lines(name.encode(), runs, f"|d{rate}{tags}".encode(), self.max_datagram)


# --- histograms ------------------------------------------------------------------


def _stand_ins(histogram: HistogramData, scale: float = 1.0) -> list[tuple[float, int]]:
    """``(value, weight)`` pairs, ascending, that stand for every value recorded.

    The minimum and the maximum stand for themselves; every other value is replaced
    by the geometric middle of its bucket (rounded to 6 significant digits and kept
    within [min, max], so the order of values is kept). Values are multiplied by
    *scale*. The weights add up to the number of values in the buckets.
    """
    buckets = [(lower, upper, n) for lower, upper, n in histogram.buckets() if n > 0]
    total = sum(n for _, _, n in buckets)
    if total == 0:
        return []
    low, high = histogram.min * scale, histogram.max * scale
    if total == 1:
        return [(low, 1)]
    middles = []
    for lower, upper, n in buckets:
        rounded = float(f"{middle(lower, upper) * scale:.6g}")
        middles.append([min(max(rounded, low), high), n])
    middles[0][1] -= 1  # the minimum is in the lowest bucket
    middles[-1][1] -= 1  # the maximum in the highest
    inner = [(float(value), int(n)) for value, n in middles if n > 0]
    return [(low, 1), *inner, (high, 1)]


def _sample_rate(weight: int) -> str:
    """Text of a sample rate that the Datadog agent turns back into exactly *weight*.

    The agent counts a value sent with rate ``r`` as ``int(1 / r)`` values. ``1 / n``
    does not always survive that round trip (``1 / (1 / 49)`` is ``48.99...``), so
    take the largest rate whose reciprocal is at least *weight*.
    """
    rate = 1.0 / weight
    while 1.0 / rate < weight:
        rate = math.nextafter(rate, 0.0)
    return _number(rate)


# --- names and tags --------------------------------------------------------------

# Datadog's unified service tags, from its variables or else from the resource.
_UNIFIED = (("env", "DD_ENV", "deployment.environment.name"), ("service", "DD_SERVICE", "service.name"),
            ("version", "DD_VERSION", "service.version"))


def constant_tags(resource: Mapping[str, str], environ: Mapping[str, str]) -> dict[str, str]:
    """The tags of every DogStatsD line: Datadog's unified service tags ``env``, ``service``
    and ``version`` (``DD_ENV``, ``DD_SERVICE``, ``DD_VERSION``, as the Datadog clients read
    them; else ``deployment.environment.name``, ``service.name``, ``service.version`` of the
    resource) and ``DD_TAGS`` (``key:value``, separated by commas or spaces)."""
    found = {}
    for item in environ.get("DD_TAGS", "").replace(",", " ").split():
        key, _, value = item.partition(":")
        if key:
            found[key] = value
    for tag, variable, attribute in _UNIFIED:
        value = environ.get(variable, "").strip() or resource.get(attribute, "")
        if value:
            found[tag] = value
    return found



def _tag_items(tags: Mapping[str, Any]) -> TagItems:
    """Tags as text, sorted by key. Text, so that the caches below tell True from 1 and 1.0."""
    return tuple(sorted(((key, _tag_text(value)) for key, value in tags.items()), key=itemgetter(0)))


def _tag_text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


_WHITESPACE = re.compile(r"\s+")
_NOT_ETSY = re.compile(r"[^A-Za-z0-9_\-.]")


def _etsy(text: str) -> str:
    """Etsy statsd's key sanitising (stats.js ``sanitizeKeyName``), without ``;`` and ``=``."""
    return _NOT_ETSY.sub("", _WHITESPACE.sub("_", text).replace("/", "-"))


@lru_cache(maxsize=8192)
def _statsd_name(name: str, tags: TagItems) -> str:
    """*name* with each tag appended as ``.key_value`` (tags sorted by key), sanitised."""
    parts = [_etsy(name)]
    parts.extend(f"{_etsy(key.replace('.', '_'))}_{_etsy(value.replace('.', '_'))}" for key, value in tags)
    return ".".join(parts)


_NOT_DATADOG_NAME = re.compile(r"[^A-Za-z0-9_.]")
_NOT_DATADOG_TAG_KEY = re.compile(r"[^\w\-./]")
_NOT_DATADOG_TAG_VALUE = re.compile(r"[^\w\-./:]")
_DATADOG_MAX = 200


@lru_cache(maxsize=8192)
def _dogstatsd_name(name: str) -> str:
    """Datadog's metric naming rule: ASCII letters, digits, ``_`` and ``.``, at most 200."""
    return _NOT_DATADOG_NAME.sub("_", name)[:_DATADOG_MAX]


@lru_cache(maxsize=8192)
def _dogstatsd_tags(tags: TagItems) -> str:
    """The ``|#key:value,...`` suffix (empty without tags), sanitised by Datadog's tag rules."""
    if not tags:
        return ""
    rendered = (
        f"{_NOT_DATADOG_TAG_KEY.sub('_', key)}:{_NOT_DATADOG_TAG_VALUE.sub('_', value)}"[:_DATADOG_MAX]
        for key, value in tags
    )
    return "|#" + ",".join(rendered)


# --- encoding --------------------------------------------------------------------


def _number(value: float) -> str:
    """Plain decimal text, never an exponent (not every StatsD server reads one); -0 is 0."""
    if isinstance(value, int):
        return str(value)
    if value.is_integer() and abs(value) < 1e16:
        return str(int(value))
    text = repr(value)
    if "e" in text:
        text = format(Decimal(text), "f")
    return text


def _multi_value_lines(prefix: bytes, runs: Iterable[tuple[bytes, int]], suffix: bytes, limit: int) -> Iterator[bytes]:
    """Lines ``prefix + pieces + suffix`` of at most *limit* bytes, each piece repeated as told.

    A line holds at least one piece, so a piece too long for *limit* gets a line of its own.
    """
    room = limit - len(prefix) - len(suffix)
    parts: list[bytes] = []
    used = 0
    for piece, count in runs:
        size = len(piece)
        while count > 0:
            fit = (room - used) // size
            if fit <= 0:
                if parts:
                    yield prefix + b"".join(parts) + suffix
                    parts, used = [], 0
                    continue
                fit = 1
            take = min(count, fit)
            parts.append(piece * take)
            used += size * take
            count -= take
    if parts:
        yield prefix + b"".join(parts) + suffix


def _pack(lines: Iterable[bytes], limit: int) -> Iterator[bytes]:
    """Datagrams of whole lines joined by newlines, at most *limit* bytes each (`export`
    has left out the points with a longer line)."""
    chunk: list[bytes] = []
    size = 0
    for line in lines:
        if chunk and size + 1 + len(line) > limit:
            yield b"\n".join(chunk)
            chunk, size = [], 0
        size += len(line) + (1 if chunk else 0)
        chunk.append(line)
    if chunk:
        yield b"\n".join(chunk)


# --- the socket ------------------------------------------------------------------


def _connect(name: str, address: tuple[str, int]) -> socket.socket:
    """A non-blocking UDP socket connected to *address*, resolved now and only now.

    Connecting filters what the socket receives and makes the kernel report an ICMP
    "port unreachable" as ``ECONNREFUSED`` on a later send.
    """
    host, port = address
    try:
        family, kind, proto, _, sockaddr = socket.getaddrinfo(host, port, 0, socket.SOCK_DGRAM)[0]
    except OSError as exc:
        raise OSError(f"{name}: cannot resolve statsd_address {host}:{port}: {exc}") from exc
    sock = socket.socket(family, kind, proto)
    try:
        sock.setblocking(False)
        sock.connect(sockaddr)
    except OSError as exc:
        sock.close()
        raise OSError(f"{name}: cannot open a UDP socket to {host}:{port}: {exc}") from exc
    return sock


def _send(sock: socket.socket, datagram: bytes, deadline: float) -> list[str]:
    """Send one datagram; the errors met on the way (none when all went well).

    ``ECONNREFUSED`` is the kernel reporting that an earlier datagram was refused;
    this one has not been sent yet, so it is tried once more.
    """
    errors: list[str] = []
    refused = False
    while True:
        try:
            sock.send(datagram)
            return errors
        except BlockingIOError:
            remaining = deadline - monotonic()
            if remaining <= 0 or not select.select([], [sock], [], remaining)[1]:
                errors.append(f"the socket send buffer stayed full for {SEND_WAIT:g} s; a datagram was dropped")
                return errors
        except ConnectionRefusedError as exc:
            errors.append(f"{exc} (an earlier datagram was refused: is the server listening?)")
            if refused:
                return errors
            refused = True
        except OSError as exc:
            errors.append(str(exc))
            return errors
