"""Read existing ML-Agents trainer configs, and check ours with ML-Agents' own strict parser.

Import keeps a team's config whole: every behaviour and every section `RunOptions` accepts (default_settings,
env, engine, torch and checkpoint settings, environment parameters), as written; only the settings the product owns
(`PRODUCT_OWNED`) are refused, naming them, and the ones the job fills where the config is silent (`JOB_FILLS`) are
passed as flags only then. Unknown options are reported the way ML-Agents reports them ("The option X was specified
in your YAML file for Y, but is invalid."), because `mlagents-learn` would refuse them too.
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
CHECKPOINT_SETTINGS = {"run_id", "initialize_from", "load_model", "resume", "force", "train_model", "inference",
                       "results_dir"}
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


# What the product decides for every run and a user's config may not: where results go, under which id, whether a
# run starts fresh or resumes (exactly-once continuation after a crash), and the ports (reserved per job). A config
# that sets one is refused, naming it; everything else in it is the user's and is kept as written.
PRODUCT_OWNED = {"checkpoint_settings": ("run_id", "results_dir", "force", "resume", "initialize_from",
                                         "inference", "load_model", "train_model"),
                 "env_settings": ("base_port",)}
# What the job fills in only where the config leaves it out (flags would override the config's own value)
JOB_FILLS = {"env_settings": ("num_envs", "seed"), "engine_settings": ("no_graphics", "time_scale"),
             "torch_settings": ("device",)}


def behavior_block(doc: dict[str, Any], behavior: str) -> dict[str, Any]:
    """A behaviour's settings as ML-Agents resolves them: `default_settings` under the behaviour's own."""
    return _deep_merge(doc.get("default_settings") or {}, (doc.get("behaviors") or {}).get(behavior) or {})


def _resolve(value: str, base: Path) -> str:
    path = Path(value).expanduser()
    return str(path if path.is_absolute() else (base / path).resolve())


def _check_behavior(settings: dict[str, Any], where: str) -> str:
    _check_keys(settings, TRAINER_SETTINGS, "TrainerSettings", where)
    trainer_type = str(settings.get("trainer_type", "ppo")).lower()
    if trainer_type not in HYPERPARAMETERS:
        raise SpecError(f"{where}: trainer_type {trainer_type!r} is not one ML-Agents 1.1 ships (ppo, sac, poca)",
                        hint="plugin trainers run with MLAGENTS_TRAIN_COMMAND and your own mlagents-learn")
    owner, allowed = HYPERPARAMETERS[trainer_type]
    _check_keys(dict(settings.get("hyperparameters") or {}), allowed, owner, f"{where}.hyperparameters")
    for name, block in (settings.get("reward_signals") or {}).items():
        if name not in REWARD_SIGNALS:
            raise SpecError(f"{where}.reward_signals: '{name}' is not a valid RewardSignalType")
        sig_owner, sig_allowed = REWARD_SIGNALS[name]
        _check_keys(block or {}, sig_allowed, sig_owner, f"{where}.reward_signals.{name}")
        if name == "gail" and "demo_path" not in (block or {}):
            raise SpecError(f"{where}.reward_signals.gail: missing required 'demo_path'")
    bc = settings.get("behavioral_cloning")
    if bc is not None and "demo_path" not in bc:
        raise SpecError(f"{where}.behavioral_cloning: missing required 'demo_path'")
    return trainer_type


def read_mlagents_config(path: str | Path) -> dict[str, Any]:
    """A user's ML-Agents trainer config, whole: every behaviour and section `RunOptions` accepts, checked as
    strictly as `mlagents-learn` checks it, with the paths in it (`demo_path`, `env_path`) made absolute against
    the config file's directory (where `mlagents-learn` users expect them to be found). Settings the product must
    own are refused, naming them."""
    p = Path(path)
    doc = copy.deepcopy(load_document(p))  # duplicate keys, YAML tags and alias bombs refused with the file named
    _check_keys(doc, TOP_LEVEL, None, str(p))
    if not doc.get("behaviors") and not doc.get("default_settings"):
        raise SpecError(f"{p}: no behaviors: section", hint="an ML-Agents trainer config lists its behaviors")
    for section, keys in PRODUCT_OWNED.items():
        owned = sorted(set(doc.get(section) or {}) & set(keys))
        if owned:
            raise SpecError(f"{p}: {section}.{owned[0]} is the product's to set (each run's results, id, ports and "
                            f"restarts are managed per job)", hint=f"remove {section}.{', '.join(owned)} from it")
    base = p.resolve().parent
    blocks = [("default_settings", doc["default_settings"])] if doc.get("default_settings") else []
    blocks += [(f"behaviors.{name}", block or {}) for name, block in (doc.get("behaviors") or {}).items()]
    for where, block in blocks:
        if where != "default_settings":
            _check_behavior(_deep_merge(doc.get("default_settings") or {}, block), f"{p}: {where}")
        for holder in ((block.get("reward_signals") or {}).get("gail"), block.get("behavioral_cloning")):
            if isinstance(holder, dict) and isinstance(holder.get("demo_path"), str):
                holder["demo_path"] = _resolve(holder["demo_path"], base)
    env_settings = doc.get("env_settings") or {}
    _check_keys(env_settings, ENV_SETTINGS, "EnvironmentSettings", f"{p}: env_settings")
    if isinstance(env_settings.get("env_path"), str):
        env_settings["env_path"] = _resolve(env_settings["env_path"], base)
    _check_keys(doc.get("engine_settings") or {}, ENGINE_SETTINGS, "EngineSettings", f"{p}: engine_settings")
    _check_keys(doc.get("checkpoint_settings") or {}, CHECKPOINT_SETTINGS, "CheckpointSettings",
                f"{p}: checkpoint_settings")
    _check_keys(doc.get("torch_settings") or {}, {"device"}, "TorchSettings", f"{p}: torch_settings")
    return doc


_BEHAVIOR_FIELDS = ("max_steps", "summary_freq", "checkpoint_interval", "keep_checkpoints", "time_horizon",
                    "reward_signals", "behavioral_cloning")


def apply_overrides(doc: dict[str, Any], behavior: str, overrides: dict[str, Any]) -> None:
    """Fields a job sets beside its config are the user's too: they change that behaviour's block (and the
    environment/engine sections), so what runs is one document."""
    block = doc.setdefault("behaviors", {}).setdefault(behavior, {})
    for key in _BEHAVIOR_FIELDS:
        if overrides.get(key) is not None:
            block[key] = copy.deepcopy(overrides[key])
    for key in ("hyperparameters", "network_settings"):
        if overrides.get(key):
            block[key] = {**(block.get(key) or {}), **copy.deepcopy(overrides[key])}
    if overrides.get("algorithm"):
        block["trainer_type"] = str(overrides["algorithm"]).lower()
    for key, (section, name) in {"num_envs": ("env_settings", "num_envs"), "seed": ("env_settings", "seed"),
                                 "time_scale": ("engine_settings", "time_scale")}.items():
        if overrides.get(key) is not None:
            doc.setdefault(section, {})[name] = overrides[key]
    if overrides.get("environment_parameters") is not None:
        doc["environment_parameters"] = copy.deepcopy(overrides["environment_parameters"])


def sync_document(doc: dict[str, Any], behavior: str, fields: dict[str, Any],
                  defaults: dict[str, Any]) -> dict[str, Any]:
    """A copy of a user's document with the job's fields that differ from it written in (a sweep's trial changes
    `learning_rate`: the run must use it). A field the document leaves out and the job leaves at its default stays
    out: the document says only what the user said."""
    out = copy.deepcopy(doc)
    block = behavior_block(out, behavior)
    env, engine = out.get("env_settings") or {}, out.get("engine_settings") or {}
    current = {**{k: block.get(k) for k in _BEHAVIOR_FIELDS}, "hyperparameters": block.get("hyperparameters") or {},
               "network_settings": block.get("network_settings") or {},
               "algorithm": str(block.get("trainer_type", "ppo")).upper(), "num_envs": env.get("num_envs"),
               "seed": env.get("seed"), "time_scale": engine.get("time_scale"),
               "environment_parameters": out.get("environment_parameters")}
    changed = {}
    for key, was in current.items():
        if key not in fields or fields[key] is None:
            continue
        value = fields[key]
        if isinstance(was, dict) and isinstance(value, dict):
            value = {k: v for k, v in value.items() if was.get(k) != v}
            if value:
                changed[key] = value
        elif value != was and not (was is None and value == defaults.get(key)):
            changed[key] = value
    apply_overrides(out, behavior, changed)
    return out


def import_mlagents_yaml(path: str | Path, behavior: str | None = None) -> dict[str, Any]:
    """The `RLTrainingConfig` fields for a user's ML-Agents trainer config: the whole document, kept as written
    (`mlagents_config`), and the summary of one behaviour (`behavior`, or the only one) for what reads fields."""
    p = Path(path)
    doc = read_mlagents_config(p)
    behaviors = doc.get("behaviors") or {}
    if behavior is None:
        if len(behaviors) != 1:
            raise SpecError(f"{p} defines behaviors {sorted(behaviors)}; choose one with behavior=...")
        behavior = next(iter(behaviors))
    if behavior not in behaviors and not doc.get("default_settings"):
        raise SpecError(f"{p}: The behavior name {behavior} has not been specified in the trainer configuration "
                        f"(it has {sorted(behaviors)})")
    settings = behavior_block(doc, behavior)
    trainer_type = _check_behavior(settings, f"{p}: behaviors.{behavior}")
    env_settings, engine = doc.get("env_settings") or {}, doc.get("engine_settings") or {}
    fields: dict[str, Any] = {
        "algorithm": trainer_type.upper(),
        "hyperparameters": dict(settings.get("hyperparameters") or {}),
        "network_settings": dict(settings.get("network_settings") or {}),
        "reward_signals": settings.get("reward_signals"),
        "behavioral_cloning": settings.get("behavioral_cloning"),
        "environment_parameters": doc.get("environment_parameters"),
        "trainer_settings": {k: settings[k] for k in EXTRA_TRAINER_KEYS if k in settings},
        "mlagents_config": doc, "mlagents_config_path": str(p.resolve()),
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
    try:  # as the product runs it: always with --env (the build stage's executable)
        RunOptions.from_argparse(parser.parse_args([path, "--env", "build/player"]))
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
    key = hashlib.sha256(hashlib.sha256(config).digest() + identity + _VALIDATE.encode()).hexdigest()  # the check too
    root = settings.cache_dir()
    return root / "yaml-checks" / f"{key}.json"
