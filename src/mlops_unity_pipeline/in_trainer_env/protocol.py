"""The Unity side of the ML-Agents protocol (communication version 1.5.0), encoded by hand.

Field numbers are those of `communicator_objects/*.proto` in ML-Agents release_21/22. Only the messages a
player sends or receives are implemented, but all of what they carry: several behaviours (each a fully qualified
`Name?team=N`), several sensors per agent (vectors as floats; camera images as PNG, like Unity's compressed camera
sensors, or as floats), agent groups with group rewards, and the side channels both ways. Vector observations are
built with one `tobytes()` per step and precomputed per-sensor prefixes, so a 64-agent step stays well under a
millisecond.
"""

from __future__ import annotations

import struct
import zlib
from dataclasses import dataclass, field

import numpy as np

from ..wire import (
    FIXED32,
    LEN,
    VARINT,
    bool_field,
    decode_action,
    int_field,
    iter_fields,
    key,
    len_field,
    packed_varints,
    signed32,
    str_field,
    varint,
)

COMMUNICATION_VERSION = "1.5.0"
PACKAGE_VERSION = "3.0.0"
STATUS_OK = 200
CMD_STEP, CMD_RESET, CMD_QUIT = 0, 1, 2
PNG, NO_COMPRESSION = 1, 0

_F32 = struct.Struct("<f")


def _header(status: int = STATUS_OK) -> bytes:
    return len_field(1, int_field(1, status))  # UnityMessageProto.header = HeaderProto{status}


def _capabilities() -> bytes:
    return b"".join(bool_field(i, True) for i in range(1, 8))  # all seven UnityRLCapabilitiesProto flags


def initialization_message(name: str) -> bytes:
    """First message: who we are (UnityRLInitializationOutputProto)."""
    init = (
        str_field(1, name)
        + str_field(2, COMMUNICATION_VERSION)
        + str_field(7, PACKAGE_VERSION)
        + len_field(8, _capabilities())
    )
    return _header() + len_field(2, len_field(2, init))  # unity_output.rl_initialization_output


def empty_message() -> bytes:
    return _header()


def brain_parameters(behavior_name: str, continuous: int, branches: tuple[int, ...]) -> bytes:
    action_spec = (
        int_field(1, continuous) + int_field(2, len(branches)) + packed_varints(3, list(branches))
    )
    legacy = (
        packed_varints(3, [continuous] if continuous else list(branches))
        + int_field(6, 1 if continuous else 0)
    )
    return legacy + str_field(7, behavior_name) + bool_field(8, True) + len_field(9, action_spec)


def png(image: np.ndarray) -> bytes:
    """A CHW image in [0, 1] as an 8-bit RGB PNG (what Unity's camera sensor sends with PNG compression)."""
    chw = np.clip(np.rint(np.asarray(image) * 255.0), 0, 255).astype(np.uint8)
    c, h, w = chw.shape
    hwc = np.ascontiguousarray(chw.transpose(1, 2, 0) if c == 3 else np.repeat(chw[:1], 3, 0).transpose(1, 2, 0))
    raw = b"".join(b"\x00" + hwc[y].tobytes() for y in range(h))  # filter type 0 on every row

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(raw, 6)) + chunk(b"IEND", b""))


class SlotEncoder:
    """`AgentInfoProto`s for one behaviour (`Name?team=N`) and its sensors: `shapes` in sensor order, with their
    names; images as PNG (`png=True`, as Unity compresses camera sensors) or as floats."""

    def __init__(self, name: str, sensors: list[tuple[str, tuple[int, ...]]], png: bool = True) -> None:
        self.name = name
        self.sensors = sensors
        self.png = png
        self._vector_prefix: list[bytes | None] = []
        for sensor_name, shape in sensors:
            if len(shape) != 1:
                self._vector_prefix.append(None)
                continue
            payload = 4 * shape[0]
            float_data = key(1, LEN) + varint(payload)  # FloatData.data, packed
            prefix = (packed_varints(1, list(shape)) + str_field(8, sensor_name)
                      + key(4, LEN) + varint(len(float_data) + payload) + float_data)
            self._vector_prefix.append(key(13, LEN) + varint(len(prefix) + payload) + prefix)

    def _observation(self, i: int, row: np.ndarray | bytes) -> bytes:
        sensor_name, shape = self.sensors[i]
        prefix = self._vector_prefix[i]
        if prefix is not None:
            return prefix + row  # type: ignore[operator]
        if self.png:
            body = (packed_varints(1, list(shape)) + int_field(2, PNG) + len_field(3, png(row))
                    + packed_varints(5, list(range(shape[0]))) + str_field(8, sensor_name))
        else:
            data = np.ascontiguousarray(row, dtype="<f4").tobytes()
            body = packed_varints(1, list(shape)) + len_field(4, len_field(1, data)) + str_field(8, sensor_name)
        return len_field(13, body)

    def agent_infos(self, ids: np.ndarray, reward: np.ndarray, done: np.ndarray, interrupted: np.ndarray,
                    obs: list[np.ndarray], group_id: np.ndarray | None = None,
                    group_reward: np.ndarray | None = None, rows: np.ndarray | None = None) -> list[bytes]:
        """One `ListAgentInfoProto.value` entry per agent in `rows` (default: all)."""
        rows = np.arange(len(ids)) if rows is None else rows
        per_sensor = []
        for i, o in enumerate(obs):
            if self._vector_prefix[i] is not None:
                raw = np.ascontiguousarray(o, dtype="<f4").tobytes()
                stride = 4 * o.shape[1]
                per_sensor.append([raw[r * stride:(r + 1) * stride] for r in rows])
            else:
                per_sensor.append([o[r] for r in rows])
        out = []
        for j, r in enumerate(rows):
            r = int(r)
            body = b"".join((
                key(7, FIXED32) + _F32.pack(float(reward[r])) if reward[r] else b"",
                b"\x40\x01" if done[r] else b"",  # field 8, varint 1
                b"\x48\x01" if interrupted[r] else b"",  # field 9, varint 1
                int_field(10, int(ids[r])),
                *(self._observation(i, per_sensor[i][j]) for i in range(len(obs))),
                int_field(14, int(group_id[r])) if group_id is not None and group_id[r] else b"",
                key(15, FIXED32) + _F32.pack(float(group_reward[r]))
                if group_reward is not None and group_reward[r] else b"",
            ))
            out.append(key(1, LEN) + varint(len(body)) + body)  # ListAgentInfoProto.value
        return out


def rl_output(entries: list[tuple[str, list[bytes]]], brains: list[bytes] | None = None,
              side_channel: bytes = b"") -> bytes:
    """`UnityMessageProto` with one `agentInfos` map entry per behaviour; the first one also declares the brains
    (UnityRLInitializationOutputProto.brain_parameters, one per behaviour)."""
    rl = b"".join(len_field(2, str_field(1, name) + len_field(2, b"".join(infos))) for name, infos in entries)
    if side_channel:
        rl += len_field(3, side_channel)
    unity_output = len_field(1, rl)
    if brains:
        unity_output += len_field(2, b"".join(len_field(5, b) for b in brains))
    return _header() + len_field(2, unity_output)


@dataclass
class TrainerInput:
    """What the trainer sent: handshake parameters, a command and the actions for every behaviour."""

    status: int = STATUS_OK
    has_input: bool = False
    seed: int | None = None
    num_areas: int = 1
    command: int = CMD_STEP
    side_channel: bytes = b""
    actions: dict[str, tuple[list[list[float]], list[list[int]]]] = field(default_factory=dict)


def _parse_actions(buf: memoryview, out: tuple[list, list]) -> None:
    cont, disc, legacy = decode_action(buf)
    if not cont and not disc and legacy:  # very old trainers only fill the deprecated field
        cont = legacy
    out[0].append(cont)
    out[1].append(disc)


def parse_trainer_message(data: bytes) -> TrainerInput:
    """Decode a `UnityMessageProto` sent by the trainer."""
    out = TrainerInput()
    for f, _wt, v, _ in iter_fields(data):
        if f == 1:
            for hf, _hwt, hv, _ in iter_fields(v):
                if hf == 1:
                    out.status = hv
        elif f == 3:  # unity_input
            out.has_input = True
            for uf, _uwt, uv, _ in iter_fields(v):
                if uf == 2:  # rl_initialization_input
                    for ff, _fwt, fv, _ in iter_fields(uv):
                        if ff == 1:
                            out.seed = signed32(fv)
                        elif ff == 5:
                            out.num_areas = fv
                elif uf == 1:  # rl_input
                    for rf, _rwt, rv, _ in iter_fields(uv):
                        if rf == 4:
                            out.command = rv
                        elif rf == 5:
                            out.side_channel = bytes(rv)
                        elif rf == 1:  # map entry<string, ListAgentActionProto>
                            name, actions = None, None
                            for ef, _ewt, ev, _ in iter_fields(rv):
                                if ef == 1:
                                    name = bytes(ev).decode("utf-8")
                                elif ef == 2:
                                    actions = ev
                            if name is not None and actions is not None:
                                lists = out.actions.setdefault(name, ([], []))
                                for af, _awt, av, _ in iter_fields(actions):
                                    if af == 1:
                                        _parse_actions(av, lists)
    return out


__all__ = ["SlotEncoder", "TrainerInput", "brain_parameters", "empty_message", "initialization_message",
           "parse_trainer_message", "png", "rl_output", "CMD_QUIT", "CMD_RESET", "CMD_STEP", "STATUS_OK", "VARINT"]
