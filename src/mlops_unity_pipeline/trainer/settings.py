"""Typed trainer settings, parsed once (CleanRL's `Args`): the generated `behaviors.<name>` block, as values.

Both trainers read `max_steps` and the hyperparameters from here, so there is one source for them; the defaults
are ML-Agents' own (`ppo_trainer`'s settings), so a key the YAML leaves out means the same thing to both.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ..behavior.definition import BehaviorDefinition
from ..specs import RLTrainingConfig
from .config import behavior_settings


@dataclass(frozen=True)
class Hyperparameters:
    batch_size: int = 1024
    buffer_size: int = 10240
    learning_rate: float = 3e-4
    beta: float = 5e-3
    epsilon: float = 0.2
    lambd: float = 0.95
    num_epoch: int = 3
    learning_rate_schedule: str = "linear"
    beta_schedule: str | None = None  # None: as the learning rate's
    epsilon_schedule: str | None = None


@dataclass(frozen=True)
class Network:
    hidden_units: int = 128
    num_layers: int = 2
    normalize: bool = False


@dataclass(frozen=True)
class TrainerSettings:
    max_steps: int
    time_horizon: int = 64
    summary_freq: int = 50000
    checkpoint_interval: int = 500000
    keep_checkpoints: int = 5
    gamma: float = 0.99
    strength: float = 1.0  # of the extrinsic reward signal
    hyperparameters: Hyperparameters = field(default_factory=Hyperparameters)
    network: Network = field(default_factory=Network)
    raw: dict[str, Any] = field(default_factory=dict, compare=False)  # the block as written to the YAML

    @classmethod
    def from_block(cls, block: dict[str, Any]) -> TrainerSettings:
        """From a `behaviors.<name>` block (unknown keys stay in `raw`; the fast trainer refuses those it cannot
        honour, see `fast.options`)."""
        h = block.get("hyperparameters") or {}
        n = block.get("network_settings") or {}
        extrinsic = (block.get("reward_signals") or {}).get("extrinsic") or {}
        hyper = Hyperparameters(**{k: _as(Hyperparameters, k, h[k]) for k in Hyperparameters.__dataclass_fields__
                                   if k in h})
        net = Network(**{k: _as(Network, k, n[k]) for k in Network.__dataclass_fields__ if k in n})
        simple = {k: _as(cls, k, block[k]) for k in ("time_horizon", "summary_freq", "checkpoint_interval",
                                                     "keep_checkpoints") if k in block}
        return cls(max_steps=int(float(block.get("max_steps", 500_000))), gamma=float(extrinsic.get("gamma", 0.99)),
                   strength=float(extrinsic.get("strength", 1.0)), hyperparameters=hyper, network=net, raw=block,
                   **simple)

    @classmethod
    def for_job(cls, definition: BehaviorDefinition, config: RLTrainingConfig) -> TrainerSettings:
        """The job's behaviour's block as it will run (from the user's own config when there is one: its
        `max_steps` is what a complete run reaches)."""
        if isinstance(config.mlagents_config, dict):
            from .config import users_config
            from .mlagents_yaml import behavior_block

            return cls.from_block(behavior_block(users_config(definition, config), definition.behavior_name))
        return cls.from_block(behavior_settings(definition, config))


_CASTS = {"int": int, "float": float, "bool": bool, "str": str}


def _as(owner: type, name: str, value: Any) -> Any:
    kind = str(owner.__dataclass_fields__[name].type).split(" |")[0]
    return _CASTS.get(kind, lambda v: v)(value)
