"""Choosing the trainer, once per job (beside `build.builders.select_builder`, which chooses the environment).

A trainer is a plugin of the `unity_mlops.trainers` family (`plugins.py`): a class with the `trainer.base.Trainer`
shape, built with the trainer environment's path, named in configs by `rl_config.trainer`.
"""

from __future__ import annotations

from pathlib import Path

from .. import plugins
from .base import Trainer


def trainer_names() -> list[str]:
    return plugins.names("trainers")


def select_trainer(name: str, trainer_env_path: Path | None = None) -> Trainer:
    return plugins.load("trainers", name)(trainer_env_path)
