"""Choosing the trainer, once per job (beside `build.builders.select_builder`, which chooses the environment).

A new trainer is a class with the `trainer.base.Trainer` shape, registered here under the name configs use in
`rl_config.trainer`.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from ..errors import UserError
from .base import Trainer
from .fast_trainer import FastTrainer
from .mlagents_trainer import MLAgentsTrainer

TRAINERS: dict[str, Callable[[Path | None], Trainer]] = {"mlagents": MLAgentsTrainer, "fast": FastTrainer}


def select_trainer(name: str, trainer_env_path: Path | None = None) -> Trainer:
    try:
        factory = TRAINERS[name]
    except KeyError:
        raise UserError(f"unknown trainer {name!r}", hint=f"use one of: {', '.join(TRAINERS)}") from None
    return factory(trainer_env_path)
