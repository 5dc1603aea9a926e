"""Every trainer config ML-Agents ships (shared/mlagents-samples/config) trains on the headless player, as shipped
except for its step budget: each behaviour is served by the built-in world that has what its settings need (memory:
the corridor; a camera for the visual samples; otherwise the arenas), all behaviours of a directory in one build and
one `mlagents-learn` run. The imitation configs learn from demonstrations recorded in the simulator of their world.
"""

from __future__ import annotations

import copy

import pytest
import yaml

from mlops_unity_pipeline.behavior import build_behavior
from mlops_unity_pipeline.build.headless import build_headless_player
from mlops_unity_pipeline.demos.record import record_demonstrations
from mlops_unity_pipeline.trainer.ports import reserve_ports
from mlops_unity_pipeline.trainer.runner import build_command, run_trainer

pytestmark = pytest.mark.trainer
STEPS = 600


def world_for(name: str, settings: dict):
    """The built-in world that fits a sample behaviour's settings."""
    needs_demos = any("demo_path" in (block or {}) for block in (
        (settings.get("reward_signals") or {}).get("gail"), settings.get("behavioral_cloning")))
    if "memory" in (settings.get("network_settings") or {}) and not needs_demos:
        return build_behavior(behavior_name=name, archetype="corridor")  # (demos are recorded in the arena worlds)
    if name.startswith("Visual") or name == "GridWorld":
        return build_behavior(behavior_name=name, archetype="reach_target", observation_space={"camera": 24})
    if name.startswith("Match3") or name == "Basic":
        return build_behavior(behavior_name=name, archetype="reach_target", action_space={"type": "discrete",
                                                                                         "branches": [3, 3]})
    return build_behavior(behavior_name=name, archetype="navigation")


def short(settings: dict) -> dict:
    s = copy.deepcopy(settings)
    s.update(max_steps=STEPS, summary_freq=200, checkpoint_interval=STEPS, keep_checkpoints=1)
    return s


@pytest.mark.parametrize("kind", ["ppo", "imitation"])
def test_every_shipped_config_trains_on_the_player(kind, samples, tmp_path, trainer_env):
    behaviors, definitions = {}, []
    for path in sorted((samples / "config" / kind).glob("*.yaml")):
        for name, settings in yaml.safe_load(path.read_text())["behaviors"].items():
            d = world_for(name, settings)
            definitions.append(d)
            s = short(settings)
            for block in (s.get("reward_signals") or {}).get("gail"), s.get("behavioral_cloning"):
                if block and "demo_path" in block:  # Unity's demos are of Unity's scenes: record this world's
                    demo = tmp_path / "demos" / f"{name}.demo"
                    if not demo.is_file():
                        record_demonstrations(d, 20, demo, agents=8)
                    block["demo_path"] = str(demo)
            behaviors[name] = s
    assert len(behaviors) == {"ppo": 17, "imitation": 4}[kind]
    exe = build_headless_player(definitions, tmp_path / "build" / "Samples", trainer_env.python, 4)
    config = tmp_path / "samples.yaml"
    config.write_text(yaml.safe_dump({"behaviors": behaviors, "engine_settings": {"no_graphics": False}}))
    with reserve_ports(1) as ports:
        command = build_command(trainer_env, config, exe, "samples", tmp_path / "results", num_envs=1, seed=3,
                                base_port=ports.base, resume=False)
        outcome = run_trainer(command, run_dir=tmp_path / "results" / "samples", behavior=definitions[0].behavior_name,
                              max_steps=STEPS, log_path=tmp_path / "trainer.log", cwd=tmp_path)
    log = (tmp_path / "trainer.log").read_text()
    assert outcome.returncode == 0, log[-3000:]
    for name in behaviors:
        assert (tmp_path / "results" / "samples" / f"{name}.onnx").is_file(), (name, log[-2000:])
        assert f"Connected new brain: {name}?team=0" in log
