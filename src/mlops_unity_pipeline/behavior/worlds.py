"""The world of a behaviour, by its archetype's task: what the headless player serves and the evaluator plays."""

from __future__ import annotations

from .definition import BehaviorDefinition
from .games import CorridorTask, DuelTask, PadsTask
from .tasks import ArenaTask, Task

WORLDS: dict[str, type[Task]] = {"duel": DuelTask, "pads": PadsTask, "corridor": CorridorTask}


def make_task(definition: BehaviorDefinition, agents: int, seed: int = 0, null: bool = False) -> Task:
    """`agents` arenas of the behaviour (pairs of agents, for the games of two)."""
    if definition.params.task == "arena" or null:
        return ArenaTask(definition, agents, seed, null)
    return WORLDS[definition.params.task](definition, agents, seed)
