"""A third party's archetype with a new observation kind, in one module (numpy and the product's `behavior` package
only: the headless player gets a copy of it). Installed with two entry points:
`[unity_mlops.observations] heading = sprint_plugin:HEADING` and
`[unity_mlops.archetypes] sprint = sprint_plugin:SPRINT`.
"""

from mlops_unity_pipeline.behavior import Archetype, ObservationKind, TaskParameters, TrainerDefaults


def heading(state, size):
    """Which way the agent is heading in the goal frame: the unit velocity along u and v (0, 0 when still)."""
    import numpy as np

    along = np.matmul(state.uv.reshape(-1, 2, 2), state.vel[:, :, None])[:, :, 0]  # (vel . u, vel . v)
    speed = np.hypot(state.vel[:, 0], state.vel[:, 1])[:, None]
    return np.where(speed > 1e-6, along / np.maximum(speed, 1e-6), 0.0)


HEADING = ObservationKind(
    "heading", "the unit velocity in the goal frame (u, v); zero when still", heading, size=2, csharp="""\
            // heading: the unit velocity in the goal frame (2 floats)
            float speedNow = velocity.magnitude;
            sensor.AddObservation(speedNow > 1e-6f ? Vector3.Dot(velocity, u) / speedNow : 0f);
            sensor.AddObservation(speedNow > 1e-6f ? Vector3.Dot(velocity, v) / speedNow : 0f);
""")

SPRINT = Archetype(
    "sprint", "Reach the target as fast as possible, knowing which way you are heading.", ("sprint", "dash"),
    {"heading": 2, "velocity": 2, "target": 2}, TaskParameters(max_steps=150, shaping_per_metre=0.15),
    exclusive_observations=("heading",), trainer=TrainerDefaults(hidden_units=64))
