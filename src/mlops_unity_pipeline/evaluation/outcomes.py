"""What evaluation episodes produced, and the report made of them; independent of where they were played.

Each episode has a key (its seed, round and agent slot, or its simulated arena) and a digest of its first
observation: two runs whose episodes have the same keys and digests played the same starts, so their outcomes can
be compared pairwise (`paired_with`). Success and collision exist only where the environment says what they are:
the simulator always; a build through its statistics (`Episode/Success`, or the job's `success_stat`), else the
report carries reward and length only.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import asdict, dataclass, field

import numpy as np


@dataclass
class EpisodeOutcomes:
    """Per-episode results in a fixed order (by key), so two policies can be compared pairwise."""

    returns: np.ndarray
    lengths: np.ndarray
    success: np.ndarray
    collision: np.ndarray
    timeout: np.ndarray
    keys: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    digests: np.ndarray = field(default_factory=lambda: np.zeros(0, np.uint64))
    has_success: bool = True
    has_collision: bool = True
    steps: int = 0  # environment steps taken (agents x decisions), for throughput
    seconds: float = 0.0

    def __post_init__(self) -> None:
        n = len(self.returns)
        if len(self.keys) != n:
            self.keys = np.arange(n, dtype=np.int64)
        if len(self.digests) != n:
            self.digests = np.zeros(n, np.uint64)

    @classmethod
    def concat(cls, parts: list[EpisodeOutcomes]) -> EpisodeOutcomes:
        arrays = {f: np.concatenate([getattr(p, f) for p in parts])
                  for f in ("returns", "lengths", "success", "collision", "timeout", "keys", "digests")}
        return cls(**arrays, has_success=all(p.has_success for p in parts),
                   has_collision=all(p.has_collision for p in parts), steps=sum(p.steps for p in parts),
                   seconds=sum(p.seconds for p in parts))

    def take(self, n: int) -> EpisodeOutcomes:
        """The first `n` episodes in key order (runs that played more keep the same, comparable set)."""
        order = np.argsort(self.keys, kind="stable")[:n]
        pick = {f: getattr(self, f)[order] for f in ("returns", "lengths", "success", "collision", "timeout", "keys",
                                                       "digests")}
        return EpisodeOutcomes(**pick, has_success=self.has_success, has_collision=self.has_collision,
                               steps=self.steps, seconds=self.seconds)

    def paired_with(self, other: EpisodeOutcomes) -> bool:
        """Both played the same episode starts in the same order."""
        return (len(self.keys) == len(other.keys) and bool(np.array_equal(self.keys, other.keys))
                and bool(np.array_equal(self.digests, other.digests)))

    def __len__(self) -> int:
        return len(self.returns)


def digest_rows(obs: list[np.ndarray]) -> np.ndarray:
    """A 64-bit digest per row of the first observations of episodes (every sensor, as float32)."""
    n = len(obs[0])
    out = np.zeros(n, np.uint64)
    flat = [np.ascontiguousarray(np.asarray(o, np.float32).reshape(n, -1)) for o in obs]
    for i in range(n):
        h = hashlib.blake2b(digest_size=8)
        for f in flat:
            h.update(np.round(f[i], 5).tobytes())
        out[i] = int.from_bytes(h.digest(), "little")
    return out


@dataclass
class EvaluationReport:
    policy: str
    episodes: int
    seed: int
    success_rate: float | None
    success_ci95: tuple[float, float] | None
    mean_reward: float
    reward_ci95: tuple[float, float]
    reward_std: float
    mean_episode_length: float
    collision_rate: float | None
    timeout_rate: float

    def to_dict(self) -> dict:
        d = asdict(self)
        d["success_ci95"] = list(self.success_ci95) if self.success_ci95 else None
        d["reward_ci95"] = list(self.reward_ci95)
        return d


def wilson(successes: int, n: int, z: float = 1.96) -> tuple[float, float]:
    if n == 0:
        return (0.0, 0.0)
    p = successes / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    lo = 0.0 if successes == 0 else max(0.0, centre - half)  # exactly 0 and 1 at the ends, not 1 - 1e-16
    return (lo, 1.0 if successes == n else min(1.0, centre + half))


def summarize(outcomes: EpisodeOutcomes, name: str, seed: int) -> EvaluationReport:
    n = len(outcomes.returns)
    mean = float(outcomes.returns.mean())
    std = float(outcomes.returns.std(ddof=1)) if n > 1 else 0.0
    half = 1.96 * std / math.sqrt(n)
    successes = int(outcomes.success.sum())
    return EvaluationReport(
        policy=name, episodes=n, seed=seed,
        success_rate=float(outcomes.success.mean()) if outcomes.has_success else None,
        success_ci95=wilson(successes, n) if outcomes.has_success else None,
        mean_reward=mean, reward_ci95=(mean - half, mean + half), reward_std=std,
        mean_episode_length=float(outcomes.lengths.mean()),
        collision_rate=float(outcomes.collision.mean()) if outcomes.has_collision else None,
        timeout_rate=float(outcomes.timeout.mean()),
    )
