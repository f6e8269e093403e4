"""Protocol Buffers wire encoding: the few primitives the protobuf exposition needs.

Hand-written rather than generated, on purpose: the Prometheus endpoint needs standard
library only (``instrument-client[prometheus]`` installs nothing), the messages it
writes are six small ones (`_protobuf`), and it only ever encodes. Generated classes
would need the ``protobuf`` package (tens of MiB with its C extension) and a ``protoc``
step for one ``.proto`` file. The tests decode what these functions write with the
``protobuf`` package's own parser and with the real Prometheus server.

Each function returns the bytes of one field: its key (field number and wire type)
and its value. A message is the concatenation of its fields; a field left out reads
as its default, so zeros are simply not written.
"""

from __future__ import annotations

import struct
from collections.abc import Iterable
from functools import lru_cache

__all__ = ["double", "message", "packed_sint", "sint", "string", "uint", "varint"]

_VARINT, _FIXED64, _LENGTH = 0, 1, 2
_DOUBLE = struct.Struct("<d")


_ONE_BYTE = tuple(bytes((value,)) for value in range(128))  # most counts, deltas and keys


def varint(value: int) -> bytes:
    """*value* (>= 0, below 2**64) as a base-128 varint, least significant group first."""
    if value < 128:
        return _ONE_BYTE[value]
    out = bytearray()
    while value > 0x7F:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


@lru_cache(maxsize=64)
def _key(number: int, wire_type: int) -> bytes:
    return varint(number << 3 | wire_type)


def _zigzag(value: int) -> int:
    """sint32/sint64's mapping of signed to unsigned: 0, -1, 1, -2 -> 0, 1, 2, 3."""
    return value << 1 if value >= 0 else (-value << 1) - 1


def uint(number: int, value: int) -> bytes:
    """A uint64 (or uint32, or enum) field; nothing for 0."""
    return _key(number, _VARINT) + varint(value) if value else b""


def sint(number: int, value: int) -> bytes:
    """A sint32 or sint64 field (zigzag); nothing for 0."""
    return _key(number, _VARINT) + varint(_zigzag(value)) if value else b""


def double(number: int, value: float) -> bytes:
    """A double field, always written (0.0 and -0.0 differ; a reader may tell absent from 0)."""
    return _key(number, _FIXED64) + _DOUBLE.pack(value)


def _length_delimited(number: int, payload: bytes) -> bytes:
    return _key(number, _LENGTH) + varint(len(payload)) + payload


def string(number: int, text: str) -> bytes:
    """A string field (UTF-8); nothing for "" (proto2's default, as for proto3)."""
    return _length_delimited(number, text.encode()) if text else b""


def message(number: int, payload: bytes) -> bytes:
    """An embedded message field, written even when empty (its presence can matter)."""
    return _length_delimited(number, payload)


def packed_sint(number: int, values: Iterable[int]) -> bytes:
    """A repeated sint64 field, packed; nothing when there are no values."""
    payload = b"".join(varint(_zigzag(value)) for value in values)
    return _length_delimited(number, payload) if payload else b""
