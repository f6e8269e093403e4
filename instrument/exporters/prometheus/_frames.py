"""The wire format between a worker and the endpoint's process: frames of points.

A frame is a 4-byte big-endian length and a UTF-8 JSON object ``{"v": 1, "points":
[...]}``; each point has ``name``, ``kind``, ``unit``, ``tags``, ``start_time``,
``end_time`` and either ``value`` (with ``additive`` true for a gauge that is the
worker's share of a total) or ``histogram`` (``count``, ``sum``, ``min``, ``max``,
``scale``, ``zero_count`` and the raw sparse buckets ``positive`` / ``negative`` as
``[[index, count], ...]``). The endpoint answers each whole frame with one byte,
`ACK`.
"""

from __future__ import annotations

import json
import socket
import struct
from typing import Any

from ..._histogram import HistogramData
from ..._model import Point

__all__ = ["ACK", "MAX_FRAME", "decode_payload", "encode_frame", "read_payload", "recv_exactly"]

MAX_FRAME = 1 << 30  # bytes; a longer frame is taken for garbage
HEADER = struct.Struct("!I")
ACK = b"\x06"


def encode_frame(points: list[Point]) -> bytes:
    """One frame: length prefix and JSON."""
    items = []
    for point in points:
        item: dict[str, Any] = {
            "name": point.name, "kind": point.kind, "unit": point.unit, "tags": point.tags,
            "start_time": point.start_time, "end_time": point.end_time,
        }
        histogram = point.histogram
        if histogram is None:
            item["value"] = point.value
            if point.additive:
                item["additive"] = True
        else:
            item["histogram"] = {
                "count": histogram.count, "sum": histogram.sum, "min": histogram.min, "max": histogram.max,
                "scale": histogram.scale, "zero_count": histogram.zero_count,
                "positive": sorted(histogram.positive.items()), "negative": sorted(histogram.negative.items()),
            }
        items.append(item)
    payload = json.dumps({"v": 1, "points": items}, separators=(",", ":")).encode()
    return HEADER.pack(len(payload)) + payload


def decode_payload(payload: bytes) -> list[Point]:
    """The points of one frame's payload; ValueError if it is not one."""
    try:
        data = json.loads(payload)
        if data.get("v") != 1:
            raise ValueError(f"unknown frame version {data.get('v')!r}")
        points = []
        for item in data["points"]:
            kind = item["kind"]
            tags = item["tags"]
            if kind not in ("counter", "gauge", "histogram") or not isinstance(tags, dict):
                raise ValueError(f"not a point: {item!r:.200}")
            histogram = None
            raw = item.get("histogram")
            if raw is not None:
                histogram = HistogramData(
                    count=int(raw["count"]), sum=raw["sum"], min=raw["min"], max=raw["max"],
                    scale=int(raw["scale"]), zero_count=int(raw["zero_count"]),
                    positive={int(i): int(n) for i, n in raw["positive"]},
                    negative={int(i): int(n) for i, n in raw["negative"]},
                )
            points.append(Point(
                str(item["name"]), kind, str(item["unit"]), tags, float(item["start_time"]),
                float(item["end_time"]), value=item.get("value"), histogram=histogram,
                additive=item.get("additive") is True,
            ))
        return points
    except (AttributeError, KeyError, TypeError, UnicodeDecodeError) as exc:
        raise ValueError(f"malformed frame: {exc!r}") from exc


def recv_exactly(sock: socket.socket, size: int) -> bytes | None:
    """*size* bytes; None at end of stream before the first; EOFError if it ends within."""
    chunks = []
    remaining = size
    while remaining:
        chunk = sock.recv(min(remaining, 1 << 20))
        if not chunk:
            if remaining == size:
                return None
            raise EOFError(f"connection closed {size - remaining} bytes into {size}")
        chunks.append(chunk)
        remaining -= len(chunk)
    return b"".join(chunks)


def read_payload(sock: socket.socket) -> bytes | None:
    """The payload of the next frame; None at end of stream between frames.

    EOFError if the stream ends within a frame, ValueError if the length is absurd.
    """
    header = recv_exactly(sock, HEADER.size)
    if header is None:
        return None
    (length,) = HEADER.unpack(header)
    if length > MAX_FRAME:
        raise ValueError(f"a frame of {length} bytes is longer than {MAX_FRAME}")
    payload = recv_exactly(sock, length)
    if payload is None:
        raise EOFError(f"connection closed after the header of a frame of {length} bytes")
    return payload
