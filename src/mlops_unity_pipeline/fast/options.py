"""What the fast trainer honours of an ML-Agents configuration. No torch here: the spec checks it at validation,
before any work starts, and lists each unsupported option once — only options the user set."""

from __future__ import annotations

from typing import Any

SUPPORTED_HYPER = {"batch_size", "buffer_size", "learning_rate", "beta", "epsilon", "lambd", "num_epoch",
                   "learning_rate_schedule", "beta_schedule", "epsilon_schedule", "shared_critic"}
SUPPORTED_NETWORK = {"normalize", "hidden_units", "num_layers", "vis_encode_type"}
SUPPORTED_BEHAVIOR = {"trainer_type", "hyperparameters", "network_settings", "reward_signals", "max_steps",
                      "time_horizon", "summary_freq", "checkpoint_interval", "keep_checkpoints"}


def unsupported_options(settings: dict[str, Any]) -> list[str]:
    """What the fast trainer cannot honour in a behavior's ML-Agents settings (it must not silently ignore them)."""
    out = []
    if settings.get("trainer_type", "ppo") != "ppo":
        out.append(f"trainer_type {settings['trainer_type']} (the fast trainer is PPO only)")
    out += [f"{k}" for k in settings if k not in SUPPORTED_BEHAVIOR]
    hyper = settings.get("hyperparameters") or {}
    out += [f"hyperparameters.{k}" for k in hyper if k not in SUPPORTED_HYPER]
    if hyper.get("shared_critic"):
        out.append("hyperparameters.shared_critic: true")
    net = settings.get("network_settings") or {}
    out += [f"network_settings.{k}" for k in net if k not in SUPPORTED_NETWORK]
    signals = settings.get("reward_signals") or {"extrinsic": {}}
    out += [f"reward_signals.{k}" for k in signals if k != "extrinsic"]
    out += [f"reward_signals.extrinsic.{k}" for k in (signals.get("extrinsic") or {}) if k not in ("gamma", "strength")]
    return list(dict.fromkeys(out))


def unsupported_in_config(config: Any) -> list[str]:
    """The options of an `RLTrainingConfig` that trainer 'fast' would have to ignore."""
    settings: dict[str, Any] = {"trainer_type": config.algorithm.lower(), "hyperparameters": config.hyperparameters,
                                "network_settings": config.network_settings, **config.trainer_settings}
    if config.reward_signals:
        settings["reward_signals"] = config.reward_signals
    if config.behavioral_cloning:
        settings["behavioral_cloning"] = config.behavioral_cloning
    out = unsupported_options(settings)
    if config.environment_parameters:
        out.append("environment_parameters (samplers and curricula)")
    if config.use_offline_rl:
        out.append("use_offline_rl (offline/hybrid training from demonstrations)")
    return out


def unsupported_behavior(definition: Any) -> list[str]:
    """What of a behaviour the fast trainer does not implement (it trains one agent per arena on vectors)."""
    out = []
    if definition.camera:
        out.append("camera observations")
    if definition.action.is_hybrid:
        out.append("hybrid actions")
    task = definition.params.task
    if task != "arena":
        what = {"duel": "two teams (self-play)", "pads": "agent groups (MA-POCA)", "corridor": "memory (an LSTM)"}
        out.append(f"the {definition.archetype} world ({what.get(task, task)})")
    return out
