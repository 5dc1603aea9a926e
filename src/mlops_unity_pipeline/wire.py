"""Minimal protocol-buffers wire format: just what the ML-Agents messages and `.demo` files need.

Hand-written on purpose: the headless player must not depend on the protobuf runtime (the trainer environment's
pure-Python protobuf 3.20 is slow, and the product environment's protobuf is a different major version).
"""

from __future__ import annotations

import struct

import numpy as np

VARINT, FIXED64, LEN, FIXED32 = 0, 1, 2, 5

_F32 = struct.Struct("<f")


class WireError(ValueError):
    """Malformed bytes; `offset` is where decoding stopped (None where the caller knows it better)."""

    def __init__(self, message: str, offset: int | None = None) -> None:
        super().__init__(message if offset is None else f"{message} at byte offset {offset}")
        self.offset = offset




def _wanted(value: object, kind: type | tuple[type, ...], what: str) -> None:
    """A field whose wire type is not the one its schema says (a flipped bit turns a varint into a length...)."""
    if not isinstance(value, kind):
        got = "a varint" if isinstance(value, int) else f"{len(value)} bytes"  # type: ignore[arg-type]
        raise WireError(f"expected {what}, found {got}")


def varint(n: int) -> bytes:
    if n < 0:
        n += 1 << 64  # protobuf encodes negative int32/int64 as 10-byte two's complement
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        if n:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def key(field: int, wire_type: int) -> bytes:
    return varint((field << 3) | wire_type)


def len_field(field: int, payload: bytes) -> bytes:
    return key(field, LEN) + varint(len(payload)) + payload


def str_field(field: int, text: str) -> bytes:
    return len_field(field, text.encode("utf-8")) if text else b""


def bool_field(field: int, value: bool) -> bytes:
    return key(field, VARINT) + b"\x01" if value else b""


def int_field(field: int, value: int) -> bytes:
    return key(field, VARINT) + varint(value) if value else b""


def float_field(field: int, value: float) -> bytes:
    return key(field, FIXED32) + _F32.pack(value) if value else b""


def packed_varints(field: int, values: list[int] | tuple[int, ...]) -> bytes:
    if not values:
        return b""
    return len_field(field, b"".join(varint(v) for v in values))


def read_varint(buf: bytes | memoryview, pos: int) -> tuple[int, int]:
    result = shift = 0
    start = pos
    while True:
        if pos >= len(buf):
            raise WireError("truncated varint", start)
        b = buf[pos]
        pos += 1
        result |= (b & 0x7F) << shift
        if not b & 0x80:
            return result, pos
        shift += 7
        if shift > 63:
            raise WireError("varint longer than 10 bytes", start)


def signed32(n: int) -> int:
    _wanted(n, int, "a varint")
    n &= 0xFFFFFFFF
    return n - (1 << 32) if n & 0x80000000 else n


def iter_fields(buf: bytes | memoryview, base: int = 0):
    """Yield (field_number, wire_type, value, offset). LEN values are memoryviews (no copy)."""
    _wanted(buf, (bytes, bytearray, memoryview), "an embedded message")
    mv = memoryview(buf)
    pos, end = 0, len(mv)
    while pos < end:
        start = pos
        tag, pos = read_varint(mv, pos)
        field, wt = tag >> 3, tag & 7
        if field == 0:
            raise WireError("invalid field number 0", base + start)
        if wt == VARINT:
            value, pos = read_varint(mv, pos)
        elif wt == LEN:
            n, pos = read_varint(mv, pos)
            if pos + n > end:
                raise WireError(f"field {field} declares {n} bytes but only {end - pos} remain", base + start)
            value = mv[pos : pos + n]
            pos += n
        elif wt == FIXED32:
            if pos + 4 > end:
                raise WireError(f"truncated fixed32 field {field}", base + start)
            value = mv[pos : pos + 4]
            pos += 4
        elif wt == FIXED64:
            if pos + 8 > end:
                raise WireError(f"truncated fixed64 field {field}", base + start)
            value = mv[pos : pos + 8]
            pos += 8
        else:
            raise WireError(f"unsupported wire type {wt} for field {field}", base + start)
        yield field, wt, value, base + start


def unpack_varints(value: bytes | memoryview | int, wire_type: int) -> list[int]:
    """A repeated integer field may arrive packed (LEN) or as single VARINTs."""
    if wire_type == VARINT:
        _wanted(value, int, "a varint")
        return [int(value)]  # type: ignore[arg-type]
    _wanted(value, (bytes, memoryview), "packed varints")
    out, pos, mv = [], 0, memoryview(value)  # type: ignore[arg-type]
    while pos < len(mv):
        v, pos = read_varint(mv, pos)
        out.append(v)
    return out


def read_float(value: memoryview) -> float:
    _wanted(value, (bytes, memoryview), "a fixed32 float")
    if len(value) != 4:
        raise WireError(f"expected a 4-byte float, found {len(value)} bytes")
    return _F32.unpack(value)[0]


def read_bytes(value: memoryview | int) -> bytes:
    _wanted(value, (bytes, memoryview), "length-delimited bytes")
    return bytes(value)  # type: ignore[arg-type]


def read_floats(value: memoryview | int, wire_type: int) -> list[float]:
    """A repeated float field, packed (LEN, a multiple of 4 bytes) or single (FIXED32)."""
    if wire_type == FIXED32:
        return [read_float(value)]  # type: ignore[arg-type]
    _wanted(value, (bytes, memoryview), "packed floats")
    if len(value) % 4:  # type: ignore[arg-type]
        raise WireError(f"packed floats of {len(value)} bytes: not a multiple of 4")  # type: ignore[arg-type]
    return list(struct.unpack(f"<{len(value) // 4}f", value))  # type: ignore[arg-type]


def _floats(value, wt) -> list[float]:
    if wt == FIXED32:
        return [read_float(value)]
    if not isinstance(value, memoryview) or len(value) % 4:
        raise WireError("expected packed floats (a multiple of 4 bytes)")
    return list(np.frombuffer(value, dtype="<f4"))


def decode_action(buf: memoryview) -> tuple[list[float], list[int], list[float]]:
    """An `AgentActionProto`: (continuous_actions, discrete_actions, the deprecated vector_actions)."""
    cont: list[float] = []
    disc: list[int] = []
    legacy: list[float] = []
    for f, wt, v, _ in iter_fields(buf):
        if f == 6:
            cont.extend(_floats(v, wt))
        elif f == 7:
            disc.extend(signed32(x) for x in unpack_varints(v, wt))
        elif f == 1:
            legacy.extend(_floats(v, wt))
    return cont, disc, legacy
