"""Read scalar series from TensorBoard event files without TensorFlow or tensorboard.

A file is a sequence of TFRecords (length, masked CRC, data, masked CRC); each record is an `Event` protobuf
(wall_time=1, step=2, summary=5 -> value=1 -> {tag=1, simple_value=2}). ML-Agents writes its scalars
(`Environment/Cumulative Reward`, `Losses/...`) as simple values.
"""

from __future__ import annotations

import struct
from collections import defaultdict
from pathlib import Path

from ..wire import FIXED32, FIXED64, iter_fields


def read_scalars(path: str | Path) -> dict[str, list[tuple[int, float]]]:
    """{tag: [(step, value), ...]} in file order; a truncated last record is ignored."""
    data = Path(path).read_bytes()
    out: dict[str, list[tuple[int, float]]] = defaultdict(list)
    pos = 0
    while pos + 12 <= len(data):
        (length,) = struct.unpack_from("<Q", data, pos)
        start, end = pos + 12, pos + 12 + length
        if end + 4 > len(data):
            break
        step = 0
        values: list[tuple[str, float]] = []
        for field, _wt, value, _ in iter_fields(data[start:end]):
            if field == 2:
                step = int(value)
            elif field == 5:
                for sf, _swt, sv, _ in iter_fields(value):
                    if sf != 1:
                        continue
                    tag, simple = None, None
                    for vf, vwt, vv, _ in iter_fields(sv):
                        if vf == 1:
                            tag = bytes(vv).decode("utf-8", "replace")
                        elif vf == 2 and vwt == FIXED32:
                            simple = struct.unpack("<f", vv)[0]
                        elif vf == 2 and vwt == FIXED64:
                            simple = struct.unpack("<d", vv)[0]
                    if tag is not None and simple is not None:
                        values.append((tag, simple))
        for tag, v in values:
            out[tag].append((step, v))
        pos = end + 4
    return dict(out)


# ---------------------------------------------------------------------------------------------------- writing
def _crc32c_table() -> list[int]:
    table = []
    for i in range(256):
        c = i
        for _ in range(8):
            c = (c >> 1) ^ 0x82F63B78 if c & 1 else c >> 1
        table.append(c)
    return table


_TABLE = _crc32c_table()


def crc32c(data: bytes) -> int:
    c = 0xFFFFFFFF
    for b in data:
        c = _TABLE[(c ^ b) & 0xFF] ^ (c >> 8)
    return c ^ 0xFFFFFFFF


def _masked(data: bytes) -> int:
    c = crc32c(data)
    return (((c >> 15) | (c << 17)) + 0xA282EAD8) & 0xFFFFFFFF


class EventWriter:
    """Writes TensorBoard scalars (the format TensorBoard, torch and ML-Agents use) without TensorFlow."""

    def __init__(self, directory: str | Path, suffix: str = "") -> None:
        import socket
        import time as _time

        d = Path(directory)
        d.mkdir(parents=True, exist_ok=True)
        name = f"events.out.tfevents.{int(_time.time())}.{socket.gethostname()}"
        self.path = d / (f"{name}.{suffix}" if suffix else name)
        self._fh = self.path.open("ab")
        self._record(self._event(0, _time.time(), file_version=True))

    @staticmethod
    def _event(step: int, wall_time: float, scalars: dict[str, float] | None = None,
               file_version: bool = False) -> bytes:
        from .. import wire

        body = wire.key(1, 1) + struct.pack("<d", wall_time) + wire.int_field(2, step)
        if file_version:
            body += wire.str_field(3, "brain.Event:2")
        if scalars:
            values = b"".join(wire.len_field(1, wire.str_field(1, tag) + wire.key(2, 5) + struct.pack("<f", v))
                              for tag, v in scalars.items())
            body += wire.len_field(5, values)
        return body

    def _record(self, data: bytes) -> None:
        header = struct.pack("<Q", len(data))
        self._fh.write(header + struct.pack("<I", _masked(header)) + data + struct.pack("<I", _masked(data)))

    def add_scalars(self, step: int, scalars: dict[str, float]) -> None:
        import time as _time

        self._record(self._event(step, _time.time(), scalars))
        self._fh.flush()

    def close(self) -> None:
        self._fh.close()
