"""The wire format between a worker and the endpoint's process: frames of points.

A frame is a 4-byte big-endian length and a UTF-8 JSON object ``{"v": 2, "points":
[...]}``, each point in `instrument._model`'s one codec (`Point.as_dict`, the jsonl
object, without the quantiles, which the endpoint never reads). The endpoint answers
each whole frame with one byte, `ACK`.

``v`` changes whenever what a frame holds changes (1 had a codec of its own). A
worker and an endpoint of different versions of instrument (a server upgraded in
place, a worker re-executed from a newer install) then refuse each other's frames
(`FrameVersionError`): the endpoint logs it and closes the connection without
acknowledging, and the worker counts the batch in ``instrument.export.failures``;
nothing is folded under a meaning it did not have.

Numbers JSON has no literal for travel too, as ``json`` writes them (``Infinity``,
``NaN``): a histogram's sum that overflowed to infinity shows at the endpoint as
``+Inf``, which Prometheus takes, rather than losing the worker's batch.
"""

from __future__ import annotations

import json
import socket
import struct

from ..._model import Point, point_from_dict

__all__ = [
    "ACK", "MAX_FRAME", "VERSION", "FrameVersionError", "decode_payload", "encode_frame", "read_payload",
    "recv_exactly",
]

VERSION = 2
MAX_FRAME = 1 << 30  # bytes; a longer frame is taken for garbage
HEADER = struct.Struct("!I")
ACK = b"\x06"


class FrameVersionError(ValueError):
    """A frame of another version of the wire format (another version of instrument)."""

    def __init__(self, version: object) -> None:
        super().__init__(f"a frame of version {version!r}; this endpoint reads version {VERSION}")
        self.version = version


def encode_frame(points: list[Point]) -> bytes:
    """One frame holding *points*: length prefix and JSON."""
    items = [point.as_dict(quantiles=False) for point in points]
    # allow_nan (json's default) on purpose: see the module docstring.
    payload = json.dumps({"v": VERSION, "points": items}, separators=(",", ":"), allow_nan=True).encode()
    return HEADER.pack(len(payload)) + payload


def decode_payload(payload: bytes) -> list[Point]:
    """The points of one frame's payload; FrameVersionError or ValueError if it is not one."""
    data = json.loads(payload)  # ValueError (UnicodeDecodeError, JSONDecodeError) if not JSON
    if not isinstance(data, dict):
        raise ValueError(f"a frame is a JSON object, got {type(data).__name__}")
    if data.get("v") != VERSION:
        raise FrameVersionError(data.get("v"))
    items = data.get("points")
    if not isinstance(items, list):
        raise ValueError(f"'points' must be a JSON array, got {items!r:.200}")
    return [point_from_dict(item, strict=False) for item in items]


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
