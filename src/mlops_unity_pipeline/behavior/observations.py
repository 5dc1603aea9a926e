"""Observation kinds of the arenas: what an agent's vector observation is made of, each defined once for both sides.

A kind is the simulator's function and the C# statements that collect the same floats in the generated Agent;
`tests/test_csharp_agents.py` compiles the C# and runs the two in lockstep, so they cannot drift apart. A new kind
is one `ObservationKind` (registered here for the built-ins, or by a package's `unity_mlops.observations` entry
point); an archetype may then list its key. A plugin's module must import with numpy and this package only: the
headless player (which runs in the trainer environment) gets a copy of it.

The C# runs inside `CollectObservations(VectorSensor sensor)` with, in scope: `u` and `v` (the goal frame, as
Vector3 in the XZ plane), the fields `velocity`, `maxSpeed`, `arenaHalfSize`, `rayLength`, `goalIndex`, `goals`,
and `DistanceToGoal()`; `{size}` is replaced by the number of floats it must add.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # numpy is imported where the arrays are made: the behavior definition stays standard library
    import numpy as np


@dataclass(frozen=True)
class ObservationState:
    """What a kind may read, for n agents at once (float32 arrays, world axes x, y = Unity's x, z)."""

    pos: np.ndarray  # [n, 2]
    vel: np.ndarray  # [n, 2]
    goal: np.ndarray  # [n, 2] the current goal
    goal_index: np.ndarray  # [n] which goal of the route
    waypoints: int  # goals per route
    uv: np.ndarray  # [n, 4]: u (x, y) then v (x, y), the goal frame
    distance: np.ndarray  # [n] to the current goal
    params: Any  # the archetype's TaskParameters
    rays: Callable[[], np.ndarray]  # [n, R] the raycast's distances / ray length (computed on demand)


@dataclass(frozen=True)
class ObservationKind:
    key: str
    description: str
    compute: Callable[[ObservationState, int], np.ndarray]  # -> [n, size] float32
    csharp: str
    size: int | None = None  # fixed size, or None for any size in `sizes`
    sizes: tuple[int, int] = (1, 64)
    aliases: tuple[str, ...] = ()
    unit: str = ""  # what its size counts, for messages ("rays")

    def code(self, size: int) -> str:
        return self.csharp.replace("{size}", str(size))


KINDS: dict[str, ObservationKind] = {}


def register_observation(kind: ObservationKind) -> ObservationKind:
    KINDS[kind.key] = kind
    return kind


def _velocity(s: ObservationState, size: int) -> np.ndarray:  # (vel . u, vel . v) / max speed
    import numpy as np

    return np.matmul(s.uv.reshape(-1, 2, 2), s.vel[:, :, None])[:, :, 0] * (1.0 / s.params.max_speed)


def _target(s: ObservationState, size: int) -> np.ndarray:
    import numpy as np

    return np.stack([s.distance * (1.0 / (2.0 * np.sqrt(2.0) * s.params.arena_half_size)), np.exp(-s.distance)],
                    axis=1)


RAYCAST = register_observation(ObservationKind(
    "raycast", "N ray distances over 360 degrees, ray 0 towards the goal; hit distance / ray length",
    lambda s, size: s.rays(), aliases=("rays", "ray", "raycasts"), unit="rays", csharp="""\
            // raycast: {size} rays over 360 degrees, ray 0 towards the goal; hit distance / ray length
            for (int k = 0; k < {size}; k++)
            {
                float angle = 2f * Mathf.PI * k / {size}f;
                Vector3 dir = Mathf.Cos(angle) * u + Mathf.Sin(angle) * v;
                RaycastHit hit;
                float distance = rayLength;
                if (Physics.Raycast(transform.position, dir, out hit, rayLength)) { distance = hit.distance; }
                sensor.AddObservation(distance / rayLength);
            }
"""))
VELOCITY = register_observation(ObservationKind(
    "velocity", "velocity in the goal frame (u, v) / max speed", _velocity, size=2, aliases=("vel",), csharp="""\
            // velocity: in the goal frame / max speed (2 floats)
            sensor.AddObservation(Vector3.Dot(velocity, u) / maxSpeed);
            sensor.AddObservation(Vector3.Dot(velocity, v) / maxSpeed);
"""))
TARGET = register_observation(ObservationKind(
    "target", "goal in the goal frame: (distance / arena diagonal, exp(-distance))", _target, size=2,
    aliases=("goal", "target_direction", "target_position"), csharp="""\
            // target: distance / arena diagonal, exp(-distance) (2 floats)
            float distanceToGoal = DistanceToGoal();
            sensor.AddObservation(distanceToGoal / (2f * Mathf.Sqrt(2f) * arenaHalfSize));
            sensor.AddObservation(Mathf.Exp(-distanceToGoal));
"""))
POSITION = register_observation(ObservationKind(
    "position", "agent position in world axes / arena half-size",
    lambda s, size: s.pos * (1.0 / s.params.arena_half_size), size=2, aliases=("pos",), csharp="""\
            // position: world axes / arena half-size (2 floats)
            sensor.AddObservation(transform.localPosition.x / arenaHalfSize);
            sensor.AddObservation(transform.localPosition.z / arenaHalfSize);
"""))
WAYPOINT_PROGRESS = register_observation(ObservationKind(
    "waypoint_progress", "fraction of the patrol route already visited",
    lambda s, size: (s.goal_index / s.waypoints)[:, None], size=1, aliases=("progress",), csharp="""\
            // waypoint_progress: fraction of the route already visited (1 float)
            sensor.AddObservation((float)goalIndex / Mathf.Max(1, goals.Length));
"""))
