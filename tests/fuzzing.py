"""Shared by the fuzz suites: seeded byte mutations of real files, and the settings every property test uses."""

from __future__ import annotations

import os

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st

EXAMPLES = int(os.environ.get("UNITY_MLOPS_FUZZ_EXAMPLES", "300"))
SETTINGS = settings(max_examples=EXAMPLES, derandomize=True, deadline=None, database=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                           HealthCheck.filter_too_much])
# (kind, where, value): overwrite a byte, flip a bit, truncate, insert a run, overwrite a run
OPS = st.lists(st.tuples(st.integers(0, 4), st.integers(0, 1 << 20), st.integers(0, 255)), min_size=1, max_size=4)


def mutate(data: bytes, ops: list[tuple[int, int, int]]) -> bytes:
    b = bytearray(data)
    for kind, where, value in ops:
        if not b:
            break
        i = where % len(b)
        if kind == 0:
            b[i] = value
        elif kind == 1:
            b[i] ^= 1 << (value % 8)
        elif kind == 2:
            del b[i:]
        elif kind == 3:
            b[i:i] = bytes([value]) * (1 + value % 7)
        else:
            b[i:i + 1 + value % 16] = bytes([value % 3 * 0x7F]) * (1 + value % 16)
    return bytes(b)
