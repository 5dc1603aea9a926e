"""Frames between the product and a process of the trainer environment: a JSON header and raw arrays.

The two sides run different NumPy majors (1.23 there, 2.x here), so arrays cross as dtype, shape and bytes, never
pickles. A frame is: 4-byte big-endian header length, the UTF-8 JSON header (with an `arrays` list of name, dtype,
shape), then each array's bytes in that order.

Standard library and NumPy only: imported on both sides.
"""

from __future__ import annotations

import json
import struct
from typing import IO, Any

import numpy as np

MAX_HEADER = 64 << 20
_DTYPES = {"float32", "float64", "int32", "int64", "uint8", "bool"}


class FrameError(EOFError):
    """The other side closed the stream or sent something that is not a frame."""


def write_frame(out: IO[bytes], header: dict[str, Any], arrays: dict[str, np.ndarray] | None = None) -> None:
    parts, specs = [], []
    for name, array in (arrays or {}).items():
        a = np.ascontiguousarray(array)
        if a.dtype.name not in _DTYPES:
            raise TypeError(f"array {name} has dtype {a.dtype}, which frames do not carry")
        specs.append([name, a.dtype.name, list(a.shape)])
        parts.append(a.tobytes())
    head = json.dumps({**header, "arrays": specs}, separators=(",", ":")).encode()
    out.write(struct.pack(">I", len(head)) + head + b"".join(parts))
    out.flush()


def _exactly(stream: IO[bytes], n: int) -> bytes:
    chunks, left = [], n
    while left:
        chunk = stream.read(left)
        if not chunk:
            raise FrameError(f"stream closed with {left} of {n} bytes still to come")
        chunks.append(chunk)
        left -= len(chunk)
    return b"".join(chunks)


def read_frame(stream: IO[bytes]) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    (size,) = struct.unpack(">I", _exactly(stream, 4))
    if size > MAX_HEADER:
        raise FrameError(f"a frame header of {size} bytes: not a frame")
    try:
        header = json.loads(_exactly(stream, size))
        specs = header.pop("arrays")
    except (ValueError, KeyError) as exc:
        raise FrameError(f"unreadable frame header: {exc}") from None
    arrays = {}
    for name, dtype, shape in specs:
        if dtype not in _DTYPES:
            raise FrameError(f"array {name} has dtype {dtype!r}")
        dt = np.dtype(dtype)
        count = int(np.prod(shape)) if shape else 1
        arrays[name] = np.frombuffer(_exactly(stream, count * dt.itemsize), dt).reshape(shape)
    return header, arrays
