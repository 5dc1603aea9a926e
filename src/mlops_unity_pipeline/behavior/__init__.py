"""The behavior model: one definition that the simulator, the headless player and the C# generator share.

Imports only the standard library and numpy, so it runs in both Python environments.
"""

from .archetypes import ARCHETYPES, Archetype, TrainerDefaults, register_archetype
from .definition import (
    OBSERVATION_KEYS,
    ActionSpec,
    BehaviorDefinition,
    BehaviorError,
    ObservationComponent,
    TaskParameters,
    build_behavior,
    choose_archetype,
)

__all__ = [
    "ARCHETYPES",
    "Archetype",
    "TrainerDefaults",
    "register_archetype",
    "OBSERVATION_KEYS",
    "ActionSpec",
    "BehaviorDefinition",
    "BehaviorError",
    "ObservationComponent",
    "TaskParameters",
    "build_behavior",
    "choose_archetype",
]
