"""Read scalar series from TensorBoard event files without TensorFlow or tensorboard.

A file is a sequence of TFRecords (length, masked CRC, data, masked CRC); each record is an `Event` protobuf
(wall_time=1, step=2, summary=5 -> value=1 -> {tag=1, simple_value=2}). ML-Agents writes its scalars
(`Environment/Cumulative Reward`, `Losses/...`) as simple values.
"""

from __future__ import annotations

import struct
from collections import defaultdict
from pathlib import Path

from ..player.wire import FIXED32, FIXED64, iter_fields


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
