"""A team's ML-Agents config is kept intact: ML-Agents' own `RunOptions` of the config as shipped and of what the
product runs (its written trainer config plus the flags it adds) differ only in the fields the product owns, or
fills where the config is silent — compared field by field, for every config ML-Agents ships and for configs with
several behaviours, env args, engine and torch settings."""

from __future__ import annotations

import json
import subprocess
import textwrap
from pathlib import Path

import pytest
import yaml

from mlops_unity_pipeline.behavior import build_behavior
from mlops_unity_pipeline.specs import RLTrainingConfig
from mlops_unity_pipeline.trainer.config import trainer_config
from mlops_unity_pipeline.trainer.environment import clean_env
from mlops_unity_pipeline.trainer.runner import build_command

pytestmark = pytest.mark.trainer
# what the product decides for every run, and what it fills only where the config said nothing
OWNED = {"checkpoint_settings.run_id", "checkpoint_settings.results_dir", "checkpoint_settings.force",
         "checkpoint_settings.resume", "env_settings.env_path", "env_settings.base_port"}
FILLED = {"env_settings.num_envs", "env_settings.seed", "engine_settings.no_graphics", "torch_settings.device"}

SYNTHETIC = {
    "two-behaviours.yaml": """
behaviors:
  Striker:
    trainer_type: ppo
    max_steps: 20000
    hyperparameters: {batch_size: 256, buffer_size: 4096}
    network_settings: {hidden_units: 64, num_layers: 1}
    self_play: {save_steps: 1000, team_change: 4000, swap_steps: 500, window: 5}
  Goalie:
    trainer_type: poca
    reward_signals: {extrinsic: {gamma: 0.995}, rnd: {strength: 0.01}}
env_settings: {env_path: Builds/Soccer, env_args: [--level, hard], num_envs: 3, num_areas: 2, seed: 9,
               timeout_wait: 120, max_lifetime_restarts: 3, restarts_rate_limit_n: 2}
engine_settings: {width: 320, height: 240, quality_level: 2, time_scale: 15, target_frame_rate: 60,
                  capture_frame_rate: 30, no_graphics: false}
torch_settings: {device: cuda:1}
checkpoint_settings: {initialize_from: older-run}
environment_parameters:
  ball_speed: {sampler_type: uniform, sampler_parameters: {min_value: 1.0, max_value: 3.0}}
""",
    "bare.yaml": """
behaviors:
  Runner: {trainer_type: sac, max_steps: 5000}
""",
    "defaults.yaml": """
default_settings:
  trainer_type: ppo
  hyperparameters: {batch_size: 128, learning_rate: 0.001}
  max_steps: 20000
behaviors:
  Left: {network_settings: {memory: {memory_size: 32, sequence_length: 16}}}
  Right: {hyperparameters: {batch_size: 64}}
""",
}

COMPARE = textwrap.dedent("""
    import json, sys
    from mlagents.plugins.trainer_type import register_trainer_plugins
    from mlagents.trainers.cli_utils import parser
    from mlagents.trainers.settings import RunOptions, TrainerSettings
    register_trainer_plugins()

    def parse(args):  # ML-Agents keeps a config's default_settings in a class attribute: one config at a time
        TrainerSettings.default_override = None
        return RunOptions.from_argparse(parser.parse_args(args)).as_dict()

    def flat(d, prefix=""):
        out = {}
        for k, v in d.items():
            if isinstance(v, dict) and v:
                out.update(flat(v, f"{prefix}{k}."))
            else:
                out[f"{prefix}{k}"] = v
        return out

    result = []
    for original, ours in json.loads(sys.argv[1]):
        a, b = flat(parse(original)), flat(parse(ours))
        result.append(sorted(k for k in a.keys() | b.keys() if a.get(k) != b.get(k)))
    print(json.dumps(result))
""")


def configs(samples: Path, tmp: Path) -> list[Path]:
    paths = sorted((samples / "config").glob("*/*.yaml"))
    for name, text in SYNTHETIC.items():
        (tmp / name).write_text(text)
        paths.append(tmp / name)
    return paths


def test_runoptions_of_the_original_and_of_what_runs_differ_only_where_the_product_owns_or_fills(
        samples, tmp_path, trainer_env):
    pairs, labels = [], []
    for path in configs(samples, tmp_path):
        doc = yaml.safe_load(path.read_text())
        if "initialize_from" in (doc.get("checkpoint_settings") or {}):  # the product owns restarts: refused
            with pytest.raises(Exception, match="checkpoint_settings.initialize_from is the product's"):
                RLTrainingConfig.from_mlagents_yaml(path, behavior=next(iter(doc["behaviors"])))
            del doc["checkpoint_settings"]
            path = tmp_path / f"accepted-{path.name}"
            path.write_text(yaml.safe_dump(doc))
        for name in doc["behaviors"]:
            cfg = RLTrainingConfig.from_mlagents_yaml(path, behavior=name)
            d = build_behavior(behavior_name=name, description="reach the target")
            written = tmp_path / f"run-{path.stem}-{name}.yaml"
            written.write_text(yaml.safe_dump(trainer_config(d, cfg)))
            flags = build_command(trainer_env, written, Path("/builds/player"), "job-1", tmp_path / "results",
                                  num_envs=cfg.num_envs, seed=cfg.seed, base_port=7000, resume=False,
                                  config=yaml.safe_load(written.read_text()), no_graphics=True, device="cpu")
            ours = flags[flags.index(str(written)):]
            env = (doc.get("env_settings") or {}).get("env_path")
            original = [str(path), *(["--env", env] if env else [])]
            pairs.append((original, ours))
            labels.append(f"{path.name}:{name}")
    proc = subprocess.run([str(trainer_env.python), "-c", COMPARE, json.dumps(pairs)], capture_output=True,
                          text=True, env=clean_env(), timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    differences = dict(zip(labels, json.loads(proc.stdout.strip().splitlines()[-1]), strict=True))
    assert len(differences) >= 21
    unexpected = {label: set(diff) - OWNED - FILLED for label, diff in differences.items()}
    assert {k: v for k, v in unexpected.items() if v} == {}
    synthetic = {k: v for k, v in differences.items() if k.startswith("accepted-two-behaviours")}
    for diff in synthetic.values():  # the config set them all: the product filled none
        assert not set(diff) & FILLED, diff
    assert set(differences["bare.yaml:Runner"]) & FILLED == {"env_settings.seed", "engine_settings.no_graphics",
                                                            "torch_settings.device"}


def test_demo_paths_are_the_config_files_neighbours_and_are_checked_against_the_behaviour_before_training(
        samples, tmp_path, trainer_env, clean_build_env):
    """A config's relative `demo_path` means next to the config file (as for mlagents-learn run from there), and
    demonstrations of another behaviour are refused before any training, naming both specs."""
    import shutil

    from mlops_unity_pipeline import TrainingJob, UnityAssetSpec, UnityMLOpsOrchestrator

    project = tmp_path / "project"
    (project / "demos").mkdir(parents=True)
    shutil.copy(samples / "demos" / "ExpertBasic.demo", project / "demos" / "expert.demo")
    (project / "trainer.yaml").write_text(
        "behaviors:\n  Scout:\n    trainer_type: ppo\n    max_steps: 1000\n"
        "    reward_signals:\n      extrinsic: {gamma: 0.99}\n"
        "      gail: {strength: 0.1, demo_path: demos/expert.demo}\n")
    cfg = RLTrainingConfig.from_mlagents_yaml(project / "trainer.yaml")
    assert cfg.reward_signals["gail"]["demo_path"] == str(project / "demos" / "expert.demo")
    orch = UnityMLOpsOrchestrator(tmp_path / "runs", show_progress=False)
    result = orch.execute_training_job_sync(TrainingJob(
        job_id="demos", asset_spec=UnityAssetSpec(asset_id="d-1", name="Scout", description="reach the target"),
        rl_config=cfg))
    assert result.failed_stage == "train" and "demonstrations do not match the behavior" in result.error
    assert "[(20,)]" in result.error and "[(6,)]" in result.error, "both observation specs are named"
    assert "branches [3]" in result.error, "and both action specs"
    assert not (tmp_path / "runs" / "demos" / "logs" / "trainer.log").exists(), "no training was started"
