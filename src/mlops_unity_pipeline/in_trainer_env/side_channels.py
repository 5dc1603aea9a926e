"""ML-Agents side channels, the Unity side: what the trainer sends (engine configuration, environment parameters)
and what the environment sends back (statistics), byte for byte as Unity's C# implementation encodes them.

A side-channel payload is a sequence of messages: channel id (16 bytes, a UUID in .NET's little-endian layout),
int32 length, body. Inside a body: int32/float32 little-endian, strings as int32 length + ASCII, float lists as
int32 count + floats. Messages for channels this player does not implement (raw bytes, float properties, a user's
own) are skipped, as Unity skips channels nobody registered; a malformed payload is reported once and ignored, so a
broken message can never stop an episode.

Runs in the trainer environment (standard library only).
"""

from __future__ import annotations

import math
import random
import struct
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field

ENGINE_CONFIGURATION = uuid.UUID("e951342c-4f7e-11ea-b238-784f4387d1f7")
ENVIRONMENT_PARAMETERS = uuid.UUID("534c891e-810f-11ea-a9d0-822485860400")
STATS = uuid.UUID("a1d8f7b7-cec8-50f9-b78b-d3e165a78520")

AVERAGE, MOST_RECENT, SUM, HISTOGRAM = 0, 1, 2, 3  # StatAggregationMethod
_ENGINE_FIELDS = {0: ("width", "height"), 1: ("quality_level",), 2: ("time_scale",), 3: ("target_frame_rate",),
                  4: ("capture_frame_rate",)}
UNIFORM, GAUSSIAN, MULTIRANGE_UNIFORM = 0, 1, 2  # EnvironmentParametersChannel.SamplerTypes


class SideChannelError(ValueError):
    """A side-channel payload that does not follow the encoding."""


class _Reader:
    def __init__(self, data: bytes) -> None:
        self.data, self.pos = data, 0

    def take(self, n: int) -> bytes:
        if n < 0 or self.pos + n > len(self.data):
            raise SideChannelError(f"truncated at byte {self.pos} (wanted {n} more of {len(self.data)})")
        out = self.data[self.pos:self.pos + n]
        self.pos += n
        return out

    def int32(self) -> int:
        return struct.unpack("<i", self.take(4))[0]

    def float32(self) -> float:
        return struct.unpack("<f", self.take(4))[0]

    def string(self) -> str:
        return self.take(self.int32()).decode("ascii", errors="replace")

    def floats(self) -> list[float]:
        n = self.int32()
        if n < 0 or n > (len(self.data) - self.pos) // 4:
            raise SideChannelError(f"float list of {n} values at byte {self.pos} exceeds the message")
        return list(struct.unpack(f"<{n}f", self.take(4 * n)))

    @property
    def done(self) -> bool:
        return self.pos >= len(self.data)


def split_messages(payload: bytes) -> list[tuple[uuid.UUID, bytes]]:
    """(channel id, body) of every message in a side-channel payload."""
    r, out = _Reader(bytes(payload)), []
    while not r.done:
        channel = uuid.UUID(bytes_le=r.take(16))
        out.append((channel, r.take(r.int32())))
    return out


def join_messages(messages: list[tuple[uuid.UUID, bytes]]) -> bytes:
    return b"".join(c.bytes_le + struct.pack("<i", len(body)) + body for c, body in messages)


def stat_message(key: str, value: float, aggregation: int = AVERAGE) -> tuple[uuid.UUID, bytes]:
    """`Academy.Instance.StatsRecorder.Add(key, value, aggregation)`, as the stats channel carries it."""
    name = key.encode("ascii", errors="replace")
    return STATS, struct.pack("<i", len(name)) + name + struct.pack("<fi", value, aggregation)


Sampler = Callable[[], float]


def _sampler(kind: int, seed: int, values: list[float]) -> Sampler:
    """Unity's samplers: each read draws anew from a generator seeded by the trainer (`SamplerFactory.cs`)."""
    rng = random.Random(seed)
    if kind == UNIFORM and len(values) == 2:
        lo, hi = values
        return lambda: rng.uniform(lo, hi)
    if kind == GAUSSIAN and len(values) == 2:
        mean, std = values
        return lambda: rng.gauss(mean, std)
    if kind == MULTIRANGE_UNIFORM and values and len(values) % 2 == 0:
        ranges = [(values[i], values[i + 1]) for i in range(0, len(values), 2)]
        widths = [max(hi - lo, 0.0) for lo, hi in ranges]
        total = sum(widths)

        def draw() -> float:  # a range with probability proportional to its width, then uniform inside it
            x = rng.uniform(0.0, total)
            for (lo, _hi), w in zip(ranges, widths, strict=True):
                if x <= w:
                    return lo + x
                x -= w
            return ranges[-1][1]

        return draw
    raise SideChannelError(f"sampler type {kind} with {len(values)} values")


@dataclass
class EnvironmentState:
    """What the trainer has told the environment so far: the engine configuration and the environment parameters
    (`Academy.Instance.EnvironmentParameters`), plus a log of what was received, for tests and the player's log."""

    engine: dict[str, float] = field(default_factory=dict)
    floats: dict[str, float] = field(default_factory=dict)
    samplers: dict[str, Sampler] = field(default_factory=dict)
    sampler_specs: dict[str, tuple[int, int, tuple[float, ...]]] = field(default_factory=dict)
    ignored: dict[str, int] = field(default_factory=dict)  # channels nobody here implements: messages seen
    errors: list[str] = field(default_factory=list)
    updates: int = 0  # environment-parameter messages received so far

    def describe(self) -> str:
        samplers = {k: f"sampler {t}{list(v)} seed {s}" for k, (t, s, v) in self.sampler_specs.items()}
        return ", ".join(f"{k}={v}" for k, v in {**self.floats, **samplers}.items()) or "none"

    def get(self, key: str, default: float) -> float:
        """`EnvironmentParameters.GetWithDefault`: a sampler draws a new value on every read."""
        if key in self.samplers:
            return float(self.samplers[key]())
        return self.floats.get(key, default)

    def apply(self, payload: bytes) -> None:
        """Read a side-channel payload from the trainer. Never raises: a malformed payload is recorded in
        `errors` (the player logs it) and the rest of the episode goes on."""
        if not payload:
            return
        try:
            messages = split_messages(payload)
        except SideChannelError as exc:
            self.errors.append(f"side-channel payload: {exc}")
            return
        for channel, body in messages:
            try:
                if channel == ENGINE_CONFIGURATION:
                    self._engine(_Reader(body))
                elif channel == ENVIRONMENT_PARAMETERS:
                    self._parameter(_Reader(body))
                else:
                    self.ignored[str(channel)] = self.ignored.get(str(channel), 0) + 1
            except (SideChannelError, UnicodeError, struct.error) as exc:
                self.errors.append(f"channel {channel}: {exc}")

    def _engine(self, r: _Reader) -> None:
        kind = r.int32()
        names = _ENGINE_FIELDS.get(kind)
        if names is None:
            raise SideChannelError(f"unknown engine configuration type {kind}")
        for name in names:
            self.engine[name] = r.float32() if name == "time_scale" else float(r.int32())

    def _parameter(self, r: _Reader) -> None:
        self.updates += 1
        key, kind = r.string(), r.int32()
        if kind == 0:  # FLOAT
            value = r.float32()
            if not math.isfinite(value):
                raise SideChannelError(f"environment parameter {key!r} is {value}")
            self.floats[key] = value
            self.samplers.pop(key, None)
            self.sampler_specs.pop(key, None)
        elif kind == 1:  # SAMPLER
            seed, sampler = r.int32(), r.int32()
            values = r.floats() if sampler == MULTIRANGE_UNIFORM else [r.float32(), r.float32()]
            self.samplers[key] = _sampler(sampler, seed, values)
            self.sampler_specs[key] = (sampler, seed, tuple(values))
            self.floats.pop(key, None)
        else:
            raise SideChannelError(f"environment parameter {key!r} has unknown data type {kind}")


def parameter_messages(values: dict[str, float]) -> bytes:
    """Float environment parameters as the trainer sends them (`EnvironmentParametersChannel.set_float_parameter`);
    the product's evaluator uses this to hand a build its evaluation seed."""
    out = []
    for key, value in values.items():
        name = key.encode("ascii")
        out.append((ENVIRONMENT_PARAMETERS, struct.pack("<i", len(name)) + name + struct.pack("<if", 0, value)))
    return join_messages(out)
