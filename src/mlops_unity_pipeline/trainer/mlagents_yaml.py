"""Read existing ML-Agents trainer configs, and check ours with ML-Agents' own strict parser.

Import keeps what a team tuned: hyperparameters, network settings, reward signals (GAIL, curiosity, RND),
behavioral cloning, curriculum and environment parameters, checkpoint cadence. Unknown options are reported the
way ML-Agents reports them ("The option X was specified in your YAML file for Y, but is invalid."), because
`mlagents-learn` would refuse them too.
"""

from __future__ import annotations

import copy
import hashlib
import json
import os
import subprocess
from pathlib import Path
from typing import Any

from .. import settings
from ..documents import load_document
from ..errors import SpecError

TOP_LEVEL = {"default_settings", "behaviors", "env_settings", "engine_settings", "environment_parameters",
             "checkpoint_settings", "torch_settings", "debug"}
TRAINER_SETTINGS = {"trainer_type", "hyperparameters", "network_settings", "reward_signals", "init_path",
                    "keep_checkpoints", "even_checkpoints", "checkpoint_interval", "max_steps", "time_horizon",
                    "summary_freq", "threaded", "self_play", "behavioral_cloning", "framework"}
HYPERPARAMETERS = {
    "ppo": ("PPOSettings", {"batch_size", "buffer_size", "learning_rate", "beta", "epsilon", "lambd", "num_epoch",
                            "shared_critic", "learning_rate_schedule", "beta_schedule", "epsilon_schedule"}),
    "poca": ("POCASettings", {"batch_size", "buffer_size", "learning_rate", "beta", "epsilon", "lambd", "num_epoch",
                              "learning_rate_schedule", "beta_schedule", "epsilon_schedule"}),
    "sac": ("SACSettings", {"batch_size", "buffer_size", "learning_rate", "learning_rate_schedule",
                            "buffer_init_steps", "tau", "steps_per_update", "save_replay_buffer", "init_entcoef",
                            "reward_signal_steps_per_update"}),
}
_SIGNAL_COMMON = {"gamma", "strength", "network_settings"}
REWARD_SIGNALS = {
    "extrinsic": ("RewardSignalSettings", _SIGNAL_COMMON),
    "curiosity": ("CuriositySettings", _SIGNAL_COMMON | {"learning_rate", "encoding_size"}),
    "rnd": ("RNDSettings", _SIGNAL_COMMON | {"learning_rate", "encoding_size"}),
    "gail": ("GAILSettings", _SIGNAL_COMMON | {"learning_rate", "encoding_size", "use_actions", "use_vail",
                                               "demo_path"}),
}
ENV_SETTINGS = {"env_path", "env_args", "base_port", "num_envs", "num_areas", "timeout_wait", "seed",
                "max_lifetime_restarts", "restarts_rate_limit_n", "restarts_rate_limit_period_s"}
ENGINE_SETTINGS = {"width", "height", "quality_level", "time_scale", "target_frame_rate", "capture_frame_rate",
                   "no_graphics", "no_graphics_monitor"}
EXTRA_TRAINER_KEYS = ("init_path", "even_checkpoints", "threaded", "self_play")


def _invalid(key: str, owner: str | None = None) -> str:
    where = f" for {owner}" if owner else ""
    return f"The option {key} was specified in your YAML file{where}, but is invalid."


def _check_keys(data: dict[str, Any], allowed: set[str], owner: str | None, path: str) -> None:
    for key in data:
        if key not in allowed:
            raise SpecError(f"{path}: {_invalid(key, owner)}")


def _deep_merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    out = copy.deepcopy(base)
    for k, v in over.items():
        out[k] = _deep_merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


def import_mlagents_yaml(path: str | Path, behavior: str | None = None) -> dict[str, Any]:
    """The `RLTrainingConfig` fields for one behavior of an ML-Agents trainer config file."""
    p = Path(path)
    doc = load_document(p)  # duplicate keys, YAML tags and alias bombs refused with the file named
    _check_keys(doc, TOP_LEVEL, None, str(p))
    behaviors = doc.get("behaviors") or {}
    if behavior is None:
        if len(behaviors) != 1:
            raise SpecError(f"{p} defines behaviors {sorted(behaviors)}; choose one with behavior=...")
        behavior = next(iter(behaviors))
    if behavior not in behaviors and not doc.get("default_settings"):
        raise SpecError(f"{p}: The behavior name {behavior} has not been specified in the trainer configuration "
                        f"(it has {sorted(behaviors)})")
    settings = _deep_merge(doc.get("default_settings") or {}, behaviors.get(behavior) or {})
    where = f"{p}: behaviors.{behavior}"
    _check_keys(settings, TRAINER_SETTINGS, "TrainerSettings", where)
    trainer_type = str(settings.get("trainer_type", "ppo")).lower()
    if trainer_type not in ("ppo", "sac"):
        raise SpecError(f"{where}: trainer_type {trainer_type!r} is not supported here (use ppo or sac)",
                        hint="poca and plugin trainers are multi-agent or custom; train them with mlagents-learn")
    owner, allowed = HYPERPARAMETERS[trainer_type]
    hyper = dict(settings.get("hyperparameters") or {})
    _check_keys(hyper, allowed, owner, f"{where}.hyperparameters")
    signals = settings.get("reward_signals")
    if signals is not None:
        for name, block in signals.items():
            if name not in REWARD_SIGNALS:
                raise SpecError(f"{where}.reward_signals: '{name}' is not a valid RewardSignalType")
            sig_owner, sig_allowed = REWARD_SIGNALS[name]
            _check_keys(block or {}, sig_allowed, sig_owner, f"{where}.reward_signals.{name}")
            if name == "gail" and "demo_path" not in (block or {}):
                raise SpecError(f"{where}.reward_signals.gail: missing required 'demo_path'")
    bc = settings.get("behavioral_cloning")
    if bc is not None and "demo_path" not in bc:
        raise SpecError(f"{where}.behavioral_cloning: missing required 'demo_path'")
    env_settings = doc.get("env_settings") or {}
    _check_keys(env_settings, ENV_SETTINGS, "EnvironmentSettings", f"{p}: env_settings")
    engine = doc.get("engine_settings") or {}
    _check_keys(engine, ENGINE_SETTINGS, "EngineSettings", f"{p}: engine_settings")
    fields: dict[str, Any] = {
        "algorithm": trainer_type.upper(),
        "hyperparameters": hyper,
        "network_settings": dict(settings.get("network_settings") or {}),
        "reward_signals": signals,
        "behavioral_cloning": bc,
        "environment_parameters": doc.get("environment_parameters"),
        "trainer_settings": {k: settings[k] for k in EXTRA_TRAINER_KEYS if k in settings},
        "_behavior": behavior,  # which behavior was imported (from_mlagents_yaml uses it, then drops it)
    }
    for key in ("max_steps", "summary_freq", "checkpoint_interval", "keep_checkpoints", "time_horizon"):
        if key in settings:
            fields[key] = int(float(settings[key]))
    if "num_envs" in env_settings:
        fields["num_envs"] = int(env_settings["num_envs"])
    if env_settings.get("seed", -1) not in (-1, None):
        fields["seed"] = int(env_settings["seed"])
    if "time_scale" in engine:
        fields["time_scale"] = float(engine["time_scale"])
    return fields


_VALIDATE = """
import json, sys
from mlagents.plugins.trainer_type import register_trainer_plugins
from mlagents.trainers.cli_utils import parser
from mlagents.trainers.settings import RunOptions
register_trainer_plugins()
out = {}
for path in sys.argv[1:]:
    try:
        RunOptions.from_argparse(parser.parse_args([path]))
        out[path] = None
    except Exception as exc:
        out[path] = f"{type(exc).__name__}: {exc}"
print(json.dumps(out))
"""


def validate_many_with_mlagents(paths: list[str | Path], python: str | Path) -> dict[str, str | None]:
    """Run ML-Agents' own strict parser (the `mlagents-learn` path) on configs: {path: error text or None}."""
    from .environment import clean_env

    proc = subprocess.run([str(python), "-c", _VALIDATE, *map(str, paths)], capture_output=True, text=True,
                          env=clean_env(), timeout=600)
    if proc.returncode != 0:
        raise RuntimeError(f"could not run ML-Agents' config parser: {proc.stderr.strip()[-1000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def validate_with_mlagents(config_path: str | Path, python: str | Path) -> str | None:
    """ML-Agents' verdict on one config: its error text, or None when it accepts it. Cached by the config's bytes
    and the trainer environment's identity (its lock marker, or the interpreter's path and mtime): the parser takes
    seconds to start, the verdict never changes for the same two."""
    path = cache_path(Path(config_path).read_bytes(), Path(python))
    try:
        return json.loads(path.read_text())["error"]
    except (OSError, ValueError, KeyError, TypeError):
        pass
    error = validate_many_with_mlagents([config_path], python)[str(config_path)]
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        tmp.write_text(json.dumps({"error": error}))
        os.replace(tmp, path)
    except OSError:
        pass  # a cache that cannot be written only costs time
    return error


def cache_path(config: bytes, python: Path) -> Path:

    from .environment import MARKER

    marker = python.parent.parent / MARKER
    try:
        identity = marker.read_bytes() if marker.is_file() else \
            f"{python.resolve()}:{python.stat().st_mtime_ns}".encode()
    except OSError:
        identity = str(python).encode()
    key = hashlib.sha256(hashlib.sha256(config).digest() + identity).hexdigest()
    root = settings.cache_dir()
    return root / "yaml-checks" / f"{key}.json"
