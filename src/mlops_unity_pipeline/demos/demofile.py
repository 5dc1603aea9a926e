"""Read and write Unity ML-Agents `.demo` files in pure Python (no mlagents, no protobuf runtime).

Layout (ML-Agents `demo_loader.py` / C# `DemonstrationWriter.cs`): a varint-delimited `DemonstrationMetaProto` at
byte 0, padding to byte 33, a varint-delimited `BrainParametersProto`, then exactly `meta.number_steps`
varint-delimited `AgentInfoActionPairProto` records; newer writers leave the raw meta bytes again at the end (a
trailer, ignored). Actions may be stored in `continuous_actions`/`discrete_actions` or only in the deprecated
`vector_actions`; both are read. Errors name the byte offset and what was expected.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .. import wire
from ..durable import replacing
from ..wire import FIXED32, LEN, VARINT, WireError, decode_action, iter_fields, read_varint, signed32, unpack_varints

META_SIZE = 32
INITIAL_POS = META_SIZE + 1
SUPPORTED_API_VERSIONS = (0, 1)
MAX_OBSERVATION_FLOATS = 1 << 24  # an observation shape promising more (without data) is corrupt, not allocated


class DemoError(ValueError):
    """A corrupt, truncated or unsupported `.demo` file."""


@dataclass
class Observation:
    shape: tuple[int, ...]
    name: str
    data: np.ndarray | None  # decoded float data, or None for compressed visual observations
    compressed: bool = False


@dataclass
class Step:
    reward: float
    done: bool
    max_step_reached: bool
    agent_id: int
    observations: list[Observation]
    continuous: np.ndarray
    discrete: np.ndarray
    action_mask: list[bool] = field(default_factory=list)


@dataclass
class Demonstration:
    path: Path | None
    api_version: int
    name: str
    number_steps: int
    number_episodes: int
    mean_reward: float
    behavior_name: str
    continuous_size: int
    branches: tuple[int, ...]
    steps: list[Step]

    @property
    def observation_shapes(self) -> list[tuple[int, ...]]:
        return [o.shape for o in self.steps[0].observations] if self.steps else []

    def arrays(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """(observations [N, size], actions [N, k], rewards [N], dones [N]) for single-vector-observation demos."""
        if any(o.data is None for s in self.steps for o in s.observations):
            raise DemoError("visual (compressed) observations cannot be turned into arrays; use vector demos")
        obs = np.stack([np.concatenate([o.data for o in s.observations]) for s in self.steps]).astype(np.float32)
        width = self.continuous_size or len(self.branches)

        def fit(a: np.ndarray) -> np.ndarray:  # a record may carry no action (e.g. some terminal records)
            return a[:width] if a.size >= width else np.concatenate([a, np.zeros(width - a.size, a.dtype)])

        if self.continuous_size:
            act = np.stack([fit(s.continuous) for s in self.steps]).astype(np.float32)
        else:
            act = np.stack([fit(s.discrete) for s in self.steps]).astype(np.int64)
        rew = np.array([s.reward for s in self.steps], np.float32)
        done = np.array([s.done for s in self.steps], bool)
        return obs, act, rew, done


def _delimited(data: bytes, pos: int, what: str) -> tuple[memoryview, int]:
    try:
        n, start = read_varint(data, pos)
    except WireError:
        raise DemoError(f"truncated length prefix of the {what} at byte offset {pos}") from None
    if start + n > len(data):
        raise DemoError(f"the {what} at byte offset {pos} declares {n} bytes but the file ends after "
                        f"{len(data) - start}: the file is truncated")
    return memoryview(data)[start:start + n], start + n


def _floats(value, wt) -> list[float]:
    return wire.read_floats(value, wt)


def _parse_observation(buf: memoryview) -> Observation:
    shape: list[int] = []
    name = ""
    data = None
    compressed = False
    for f, wt, v, _ in iter_fields(buf):
        if f == 1:
            shape.extend(unpack_varints(v, wt))
        elif f == 2 and wt == VARINT:
            compressed = v != 0
        elif f == 3:
            compressed = True
        elif f == 4:
            for ff, fwt, fv, _ in iter_fields(v):
                if ff == 1:
                    data = np.array(_floats(fv, fwt), np.float32)
        elif f == 8:
            name = wire.read_bytes(v).decode("utf-8", "replace")
    size = 1
    for d in shape:
        size *= d
        if size > MAX_OBSERVATION_FLOATS:
            raise WireError(f"observation shape {shape[:8]} is impossible (at most {MAX_OBSERVATION_FLOATS} floats "
                            "in all)")
    if data is not None and shape and data.size != size:
        raise WireError(f"observation shape {tuple(shape)} holds {size} floats but {data.size} are stored")
    if data is None and not compressed:
        data = np.zeros(size if shape else 0, np.float32)
    return Observation(tuple(shape), name, data, compressed)


def _parse_pair(buf: memoryview, continuous: int, branches: tuple[int, ...]) -> Step:
    reward, done, max_step, agent_id = 0.0, False, False, 0
    observations: list[Observation] = []
    mask: list[bool] = []
    cont: list[float] = []
    disc: list[int] = []
    legacy: list[float] = []
    for f, _wt, v, _ in iter_fields(buf):
        if f == 1:  # agent_info
            for af, awt, av, _ in iter_fields(v):
                if af == 7:
                    reward = wire.read_float(av) if awt == FIXED32 else 0.0
                elif af == 8:
                    done = bool(signed32(av))
                elif af == 9:
                    max_step = bool(signed32(av))
                elif af == 10:
                    agent_id = signed32(av)
                elif af == 11:
                    mask.extend(bool(x) for x in unpack_varints(av, awt))
                elif af == 13:
                    observations.append(_parse_observation(av))
        elif f == 2:  # action_info
            cont, disc, legacy = decode_action(v)
    if not cont and not disc and legacy:  # every example demo only fills the deprecated field
        if continuous:
            cont = legacy[:continuous]
        else:
            disc = [int(x) for x in legacy[:len(branches)]]
    return Step(reward, done, max_step, agent_id, observations, np.array(cont, np.float32),
                np.array(disc, np.int64), mask)


def read_demo(path: str | Path) -> Demonstration:
    p = Path(path)
    try:
        data = p.read_bytes()
    except OSError as exc:
        raise DemoError(f"cannot read {p}: {exc.strerror or exc}") from None
    if not data:
        raise DemoError(f"{p} is empty")
    pos = 0
    try:
        meta_buf, _ = _delimited(data, 0, "demonstration metadata")
        api, name, steps, episodes, mean = 0, "", 0, 0, 0.0
        for f, wt, v, _ in iter_fields(meta_buf):
            if f == 1:
                api = signed32(v)
            elif f == 2:
                name = wire.read_bytes(v).decode("utf-8", "replace")
            elif f == 3:
                steps = signed32(v)
            elif f == 4:
                episodes = signed32(v)
            elif f == 5 and wt == FIXED32:
                mean = wire.read_float(v)
        if api not in SUPPORTED_API_VERSIONS:
            raise DemoError(f"{p}: demonstration api_version {api} is not supported (expected 0 or 1)")
        if len(data) <= INITIAL_POS:
            raise DemoError(f"{p}: the file ends at byte {len(data)}, before the brain parameters at byte "
                            f"{INITIAL_POS}: truncated")
        brain_buf, pos = _delimited(data, INITIAL_POS, "brain parameters")
        behavior, continuous, branches = "", 0, ()
        legacy_sizes: list[int] = []
        legacy_type = 0
        for f, wt, v, _ in iter_fields(brain_buf, INITIAL_POS):
            if f == 7:
                behavior = wire.read_bytes(v).decode("utf-8", "replace")
            elif f == 9:
                nd = 0
                sizes: list[int] = []
                for af, awt, av, _ in iter_fields(v):
                    if af == 1:
                        continuous = signed32(av)
                    elif af == 2:
                        nd = signed32(av)
                    elif af == 3:
                        sizes.extend(unpack_varints(av, awt))
                branches = tuple(sizes[:nd]) if nd else tuple(sizes)
            elif f == 3:
                legacy_sizes.extend(unpack_varints(v, wt))
            elif f == 6:
                legacy_type = signed32(v)
        if not continuous and not branches:  # files from before communication 1.3
            if legacy_type == 1:
                continuous = legacy_sizes[0] if legacy_sizes else 0
            else:
                branches = tuple(legacy_sizes)
        if not behavior or steps <= 0 or (continuous <= 0 and not branches) or continuous > 4096 \
                or any(not 0 < b <= 1 << 16 for b in branches):
            raise DemoError(f"{p}: no valid demonstration header (behavior {behavior!r}, {steps} steps, "
                            f"{continuous} continuous actions, branches {tuple(branches)[:8]}): not a .demo file, "
                            "or its metadata is corrupt")
        records: list[Step] = []
        for i in range(steps):
            if pos >= len(data):
                raise DemoError(f"{p}: expected {steps} steps but the file ends after {i} (byte offset {pos}): "
                                "truncated")
            buf, next_pos = _delimited(data, pos, f"step {i}")
            try:
                records.append(_parse_pair(buf, continuous, branches))
            except WireError as exc:
                raise DemoError(f"{p}: step {i} starting at byte offset {pos} is corrupt: {exc}") from None
            pos = next_pos
    except WireError as exc:
        raise DemoError(f"{p}: corrupt protobuf data: {exc}") from None
    except DemoError as exc:  # every message names the file (a directory of demos has many)
        raise exc if str(p) in str(exc) else DemoError(f"{p}: {exc}") from None
    except (ValueError, OverflowError, MemoryError) as exc:  # a value no decoder check anticipated: still a clear error
        raise DemoError(f"{p}: corrupt data near byte offset {pos}: {exc}") from None
    return Demonstration(p, api, name, steps, episodes, mean, behavior, int(continuous), tuple(branches), records)


def read_demos(path: str | Path) -> list[Demonstration]:
    """A `.demo` file, or every `*.demo` in a directory (as ML-Agents loads them)."""
    p = Path(path)
    if p.is_dir():
        files = sorted(p.glob("*.demo"))
        if not files:
            raise DemoError(f"no .demo files in {p}")
        return [read_demo(f) for f in files]
    if not p.is_file():
        raise DemoError(f"demonstrations not found: {p}")
    return [read_demo(p)]


def demo_sha256(path: str | Path) -> list[dict[str, str]]:
    p = Path(path)
    files = sorted(p.glob("*.demo")) if p.is_dir() else [p]
    return [{"path": str(f), "sha256": hashlib.sha256(f.read_bytes()).hexdigest()} for f in files]


# ---------------------------------------------------------------------------------------------------- writing
def _observation_bytes(values: np.ndarray) -> bytes:
    values = np.asarray(values, "<f4").reshape(-1)
    float_data = wire.len_field(1, values.tobytes())
    return (wire.packed_varints(1, [values.size]) + wire.len_field(4, float_data)
            + wire.str_field(8, f"VectorSensor_size{values.size}"))


def write_demo(path: str | Path, behavior_name: str, observations: np.ndarray, actions: np.ndarray,
               rewards: np.ndarray, dones: np.ndarray, *, continuous: int = 0, branches: tuple[int, ...] = (),
               interrupted: np.ndarray | None = None, agent_ids: np.ndarray | None = None,
               name: str | None = None) -> Path:
    """Write a `.demo` as Unity's writer does (meta at 0, brain at 33, records, meta trailer)."""
    p = Path(path)
    n = len(observations)
    episodes = int(np.sum(dones)) + (0 if n and dones[-1] else 1)
    total_reward = float(np.sum(rewards))
    title = (name or p.stem).encode("utf-8")
    while True:  # the metadata must fit the 32-byte block before byte 33: shorten the name if needed
        meta = (wire.int_field(1, 1) + wire.str_field(2, title.decode("utf-8", "ignore")) + wire.int_field(3, n)
                + wire.int_field(4, episodes) + wire.float_field(5, total_reward / max(episodes, 1)))
        if len(meta) + 1 <= META_SIZE or not title:
            break
        title = title[:-1]
    action_spec = (wire.int_field(1, continuous) + wire.int_field(2, len(branches))
                   + wire.packed_varints(3, list(branches)))
    brain = wire.str_field(7, behavior_name) + wire.bool_field(8, True) + wire.len_field(9, action_spec)
    out = bytearray(wire.varint(len(meta)) + meta)
    out += b"\0" * (INITIAL_POS - len(out))
    out += wire.varint(len(brain)) + brain
    interrupted = np.zeros(n, bool) if interrupted is None else interrupted
    agent_ids = np.zeros(n, np.int64) if agent_ids is None else agent_ids
    for i in range(n):
        info = (wire.float_field(7, float(rewards[i])) + wire.bool_field(8, bool(dones[i]))
                + wire.bool_field(9, bool(interrupted[i])) + wire.int_field(10, int(agent_ids[i]))
                + wire.len_field(13, _observation_bytes(observations[i])))
        if continuous:
            a = np.asarray(actions[i], "<f4").reshape(-1)
            action = wire.len_field(1, a.tobytes()) + wire.len_field(6, a.tobytes())
        else:
            a = [int(x) for x in np.asarray(actions[i]).reshape(-1)]
            action = wire.len_field(1, np.asarray(a, "<f4").tobytes()) + wire.packed_varints(7, a)
        pair = wire.len_field(1, info) + wire.len_field(2, action)
        out += wire.varint(len(pair)) + pair
    out += meta  # Unity's writer leaves the raw meta bytes at the end
    with replacing(p) as fh:
        fh.write(bytes(out))
    return p


__all__ = ["DemoError", "Demonstration", "read_demo", "read_demos", "write_demo", "demo_sha256", "LEN"]
