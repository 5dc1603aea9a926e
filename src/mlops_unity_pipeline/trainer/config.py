"""ML-Agents trainer YAML from an `RLTrainingConfig` and the behavior's archetype defaults.

Only keys that ML-Agents' strict parser accepts are written. Run-specific settings (run id, results dir, env
path, ports, resume) travel as `mlagents-learn` flags instead, because flags override the YAML and a
hard-coded `resume:` in a YAML is a known trap.
"""

from __future__ import annotations

import copy
import logging
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..behavior.archetypes import archetype
from ..behavior.definition import BehaviorDefinition

if TYPE_CHECKING:  # the specs validate configs with this module's helpers: no import back at run time
    from ..specs import RLTrainingConfig

# The shared bases; each archetype's `TrainerDefaults` adjust them (tuned on this machine class so each archetype is
# learnable with the default step budgets: docs/how-to/behaviours.md; learning figures: docs/benchmarks/quickstart.md).
_PPO_BASE: dict[str, Any] = {
    "batch_size": 256,
    "buffer_size": 2048,
    "learning_rate": 3.0e-4,
    "beta": 5.0e-3,
    "epsilon": 0.2,
    "lambd": 0.95,
    "num_epoch": 3,
    "learning_rate_schedule": "linear",
}
_SAC_BASE: dict[str, Any] = {
    "batch_size": 256,
    "buffer_size": 100_000,
    "buffer_init_steps": 1000,
    "learning_rate": 3.0e-4,
    "learning_rate_schedule": "constant",
    "tau": 0.005,
    "steps_per_update": 8.0,
    "init_entcoef": 0.5,
}
DEFAULT_AGENTS_PER_ENV = 32
MIN_TIME_HORIZON = 8


def agents_per_env(config: RLTrainingConfig) -> int:
    return config.agents_per_env or DEFAULT_AGENTS_PER_ENV


def on_policy_time_horizon(archetype_horizon: int, buffer_size: int, agents: int) -> int:
    """PPO's default `time_horizon` for this many agents: at most what one update's buffer holds per agent.

    ML-Agents hands a trajectory to the update buffer only once an agent has `time_horizon` steps (or its episode
    ends). With 8 players x 32 agents and a horizon of 64, one round of trajectories is 16,384 steps for a 4,096-step
    buffer: each update learns from experience gathered by up to four policies ago, and PPO's clipped ratio then
    throws most of the update away. A horizon of buffer_size / agents keeps each update on-policy, which is what
    the fast trainer (and SB3) do by construction. Figures: docs/benchmarks/quickstart.md#learning-with-the-defaults."""
    return max(MIN_TIME_HORIZON, min(archetype_horizon, buffer_size // max(1, agents)))


def behavior_settings(definition: BehaviorDefinition, config: RLTrainingConfig) -> dict[str, Any]:
    """The `behaviors.<name>` block."""
    arch = archetype(definition.archetype).trainer
    if config.algorithm == "SAC":
        trainer_type, hyper = "sac", copy.deepcopy(_SAC_BASE)
    else:  # PPO on a group task means ML-Agents' PPO for groups, MA-POCA
        trainer_type = "poca" if config.algorithm == "POCA" else arch.trainer_type
        hyper = {**_PPO_BASE, **arch.ppo}
    hyper.update(config.hyperparameters)
    network = {"normalize": arch.normalize, "hidden_units": arch.hidden_units, "num_layers": arch.num_layers,
               **({"memory": dict(arch.memory)} if arch.memory else {}), **config.network_settings}
    max_steps = config.max_steps
    summary = config.summary_freq or max(1000, (max_steps // 20) // 1000 * 1000)
    checkpoint = config.checkpoint_interval or max(summary, max_steps // 5)
    settings: dict[str, Any] = {
        "trainer_type": trainer_type,
        "hyperparameters": hyper,
        "network_settings": network,
        "reward_signals": copy.deepcopy(config.reward_signals) or {"extrinsic": {"gamma": 0.99, "strength": 1.0}},
        "max_steps": max_steps,
        "time_horizon": config.time_horizon or (arch.time_horizon if trainer_type == "sac" else on_policy_time_horizon(
            arch.time_horizon, int(hyper["buffer_size"]), config.num_envs * agents_per_env(config))),
        "summary_freq": summary,
        "checkpoint_interval": checkpoint,
        "keep_checkpoints": config.keep_checkpoints or 5,
        **({"self_play": copy.deepcopy(arch.self_play)} if arch.self_play else {}),
        **copy.deepcopy(config.trainer_settings),
    }
    if config.behavioral_cloning:
        settings["behavioral_cloning"] = copy.deepcopy(config.behavioral_cloning)
    elif config.use_offline_rl and config.demonstrations_path and config.offline_mode == "hybrid":
        # keep imitating the demonstrations while PPO fine-tunes, fading out over the first half of the run
        settings["behavioral_cloning"] = {"demo_path": str(Path(config.demonstrations_path).resolve()),
                                          "strength": 0.5, "steps": max(1, max_steps // 2)}
    return settings


def trainer_config(definition: BehaviorDefinition, config: RLTrainingConfig) -> dict[str, Any]:
    """The whole trainer YAML document: the user's own (`mlagents_config`), as written, or one made from the
    archetype's defaults and the job's fields."""
    if isinstance(config.mlagents_config, dict):
        return users_config(definition, config)
    doc: dict[str, Any] = {
        "behaviors": {definition.behavior_name: behavior_settings(definition, config)},
        # camera sensors need rendering; everything else runs without graphics
        "engine_settings": {"time_scale": config.time_scale, "no_graphics": not definition.camera},
        # num_envs travels as --num-envs: ML-Agents rejects num_envs > 1 in a YAML that has no env_path
        "env_settings": {"seed": config.seed},
    }
    if config.environment_parameters:
        doc["environment_parameters"] = _retarget_curriculum(config.environment_parameters, definition.behavior_name,
                                                             config.curriculum_behavior)
    return doc


def curriculum_behaviors(params: dict[str, Any] | None) -> list[str]:
    """The behavior names the curricula's completion criteria refer to, in order of appearance."""
    names: list[str] = []
    for value in (params or {}).values():
        if isinstance(value, dict):
            for lesson in value.get("curriculum") or []:
                criteria = lesson.get("completion_criteria") if isinstance(lesson, dict) else None
                if isinstance(criteria, dict) and isinstance(criteria.get("behavior"), str):
                    names.append(criteria["behavior"])
    return list(dict.fromkeys(names))


def _retarget_curriculum(params: dict[str, Any], behavior: str, source: str | None = None) -> dict[str, Any]:
    """Curriculum completion criteria name a behavior; an imported config names its own. Only the lessons of the
    behavior that is this job's are re-targeted: `source`, or the one behavior named when there is only one (a
    config naming several without `source` is refused at validation). The other behaviors' lessons keep their
    names."""
    out = copy.deepcopy(params)
    named = curriculum_behaviors(out)
    source = source or (named[0] if len(named) == 1 else None)
    for value in out.values():
        if isinstance(value, dict):
            for lesson in value.get("curriculum") or []:
                criteria = lesson.get("completion_criteria") if isinstance(lesson, dict) else None
                if isinstance(criteria, dict) and criteria.get("behavior") == source:
                    criteria["behavior"] = behavior
    return out


def users_config(definition: BehaviorDefinition, config: RLTrainingConfig) -> dict[str, Any]:
    """A user's config as it runs: unchanged, except that the build it names (`env_settings.env_path`) is the one
    the build stage chose and travels as `--env`, and that the config's behaviour trains under the job's behaviour
    name when it names it otherwise (its curriculum lessons follow)."""
    doc = copy.deepcopy(config.mlagents_config)
    assert isinstance(doc, dict)
    named = (doc.get("env_settings") or {}).pop("env_path", None)
    if named:  # said, not silently replaced
        logging.getLogger("unity_mlops").warning(
            "the config's env_settings.env_path (%s) is not used: a job trains on the build its build stage makes "
            "(UNITY_BUILD_COMMAND, or the headless player)", named)
    behaviors = doc.setdefault("behaviors", {})
    source, name = config.mlagents_behavior, definition.behavior_name
    if source and source != name and name not in behaviors and source in behaviors:
        behaviors[name] = behaviors.pop(source)
        if doc.get("environment_parameters"):
            doc["environment_parameters"] = _retarget_curriculum(doc["environment_parameters"], name, source)
    return doc
