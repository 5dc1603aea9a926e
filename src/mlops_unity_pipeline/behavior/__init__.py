"""The behavior model: one definition that the simulator, the headless player and the C# generator share.

Imports only the standard library and numpy, so it runs in both Python environments.
"""

from .archetypes import ARCHETYPES, Archetype, TrainerDefaults, register_archetype
from .definition import (
    ActionSpec,
    BehaviorDefinition,
    BehaviorError,
    ObservationComponent,
    TaskParameters,
    build_behavior,
    choose_archetype,
    observation_keys,
)
from .observations import ObservationKind, ObservationState, register_observation

__all__ = [
    "ARCHETYPES",
    "Archetype",
    "TrainerDefaults",
    "register_archetype",
    "ObservationKind",
    "ObservationState",
    "register_observation",
    "observation_keys",
    "ActionSpec",
    "BehaviorDefinition",
    "BehaviorError",
    "ObservationComponent",
    "TaskParameters",
    "build_behavior",
    "choose_archetype",
]
