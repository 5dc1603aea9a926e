"""The generated C# Agents are compiled by a real C# compiler and run in lockstep with the Python simulator.

A behaviour is written twice: `behavior/` (the simulator that the headless player, the fast trainer and the
evaluator use) and the C# templates (what runs in the team's Unity project). This test holds them together. Each
generated Agent is compiled with Debian's `mono-mcs` against `tests/csharp/UnityStandIn.cs` (the UnityEngine and
ML-Agents types it uses, with their signatures and documented semantics), and `tests/csharp/Harness.cs` plays it
the way the Academy would: the scene of each episode is the layout the simulator drew, the actions are the
simulator's (an expert with noise, so goals, waypoints, collisions and timeouts all happen), and every step's
observations, rewards and episode ends must agree within 1e-4 for 10,000 steps. A change to either side alone
fails it (`test_the_differential_test_catches_a_one_sided_change`).
"""

from __future__ import annotations

import dataclasses
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from mlops_unity_pipeline.behavior import build_behavior
from mlops_unity_pipeline.behavior.simulator import FAR, Simulator
from mlops_unity_pipeline.behavior.worlds import make_task
from mlops_unity_pipeline.demos.record import expert_policy
from mlops_unity_pipeline.generate.base import TemplateGenerator
from mlops_unity_pipeline.specs import RLTrainingConfig, UnityAssetSpec

CSHARP = Path(__file__).with_name("csharp")
STEPS = 10_000
TOLERANCE = 1e-4
ARENAS = ["reach_target", "navigation", "patrol", "obstacle_course"]


def _tools() -> tuple[str, str]:
    mcs, mono = shutil.which("mcs"), shutil.which("mono")
    if not (mcs and mono):
        pytest.fail("the C# compiler is missing: apt-get install mono-mcs (`make test` installs it)")
    return mcs, mono


def compile_agent(definition, out: Path, template_dir: Path | None = None) -> Path:
    """Generate the Agent for `definition` and compile it with the stand-in and the harness."""
    spec = UnityAssetSpec(asset_id="cs", name=definition.behavior_name, description="differential")
    generator = TemplateGenerator(template_dir) if template_dir else TemplateGenerator()
    generated = generator.generate(spec, definition, RLTrainingConfig(), out / "generated")
    exe = out / "agent.exe"
    mcs, _ = _tools()
    proc = subprocess.run([mcs, "-langversion:experimental", "-nologo", "-warnaserror-", f"-out:{exe}",
                           "-r:System.Core.dll", str(CSHARP / "UnityStandIn.cs"), str(CSHARP / "Harness.cs"),
                           str(generated.agent_source)], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return exe


def play(exe: Path, kind: str, definition, commands: list[str]) -> list[tuple[str, np.ndarray]]:
    _, mono = _tools()
    a = definition.action
    proc = subprocess.run([mono, str(exe), kind, str(a.continuous), str(len(a.branches))],
                          input="\n".join(commands) + "\n", capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return [(line[0], np.array(line[2:].split(), np.float64)) for line in proc.stdout.splitlines()]


def _f(values) -> str:
    return " ".join(repr(float(v)) for v in np.ravel(values))


def compare(expected: list[tuple[str, np.ndarray]], got: list[tuple[str, np.ndarray]]) -> None:
    assert len(got) == len(expected), (len(got), len(expected))
    for n, ((kind, want), (got_kind, have)) in enumerate(zip(expected, got, strict=True)):
        assert got_kind == kind and have.shape == want.shape, (n, kind, got_kind, want, have)
        if not np.allclose(have, want, atol=TOLERANCE, rtol=0):
            bad = np.flatnonzero(~np.isclose(have, want, atol=TOLERANCE, rtol=0))
            raise AssertionError(f"line {n} ({kind}): at {bad.tolist()} C# {have[bad]} != Python {want[bad]}; "
                                 f"before it: {expected[max(0, n - 2):n]}")


def _actions(policy, obs: np.ndarray, rng: np.random.Generator, definition) -> np.ndarray:
    """The expert, with noise and now and then a random action, so every kind of episode end happens."""
    act = policy(obs)
    if definition.action.is_continuous:
        act = act + rng.normal(0.0, 0.3, act.shape).astype(np.float32)
        if rng.random() < 0.1:
            act = rng.uniform(-1.2, 1.2, act.shape).astype(np.float32)
        return act.astype(np.float32)
    if rng.random() < 0.2:
        return np.array([[rng.integers(0, b) for b in definition.action.branches]], np.int64)
    return act


# --------------------------------------------------------------------------------------------- the arenas
def arena_script(definition, steps: int, seed: int) -> tuple[list[str], list[tuple[str, np.ndarray]]]:
    sim = Simulator(definition, 1, seed)
    policy, rng = expert_policy(definition), np.random.default_rng(seed)
    a = definition.action
    commands: list[str] = []
    expected: list[tuple[str, np.ndarray]] = []

    def reset(obs: np.ndarray) -> None:
        obstacles = [f"{x!r} {y!r} {r!r} {0.0 if abs(x) >= FAR / 2 else 1.0}"
                     for (x, y), r in zip(sim.obstacles[0].tolist(), sim.obstacle_r[0].tolist(), strict=True)]
        commands.append(f"reset {_f(sim.pos[0])} {definition.params.goal_radius!r} {len(sim.goals[0])} "
                        f"{_f(sim.goals[0])} {len(obstacles)} {' '.join(obstacles)}".rstrip())
        expected.append(("O", obs[0].astype(np.float64)))

    obs = sim.observe()
    reset(obs)
    for _ in range(steps):
        act = _actions(policy, obs, rng, definition)
        if a.is_continuous and a.branches:  # hybrid: acceleration and a boost
            boost = rng.integers(0, 2, (1, 1))
            res = sim.step(act, discrete=boost)
            commands.append(f"step {_f(act[0, :a.continuous])} {int(boost[0, 0])}")
        else:
            res = sim.step(act)
            commands.append(f"step {_f(act[0])}" if a.is_continuous else f"step {' '.join(map(str, act[0]))}")
        expected.append(("R", np.array([res.reward[0], res.done[0], res.interrupted[0], 0.0], np.float64)))
        if res.done[0]:
            expected.append(("T", res.obs[0].astype(np.float64)))
            obs = sim.reset_done(res.done, res.obs)
            reset(obs)
        else:
            expected.append(("O", res.obs[0].astype(np.float64)))
            obs = res.obs
    return commands, expected


@pytest.fixture(scope="module")
def compiled(tmp_path_factory):
    cache: dict[str, Path] = {}

    def get(definition) -> Path:
        key = definition.to_json()
        if key not in cache:
            cache[key] = compile_agent(definition, tmp_path_factory.mktemp(definition.archetype))
        return cache[key]
    return get


@pytest.mark.parametrize("archetype", ARENAS)
def test_arena_agents_match_the_simulator(archetype, compiled):
    d = build_behavior(behavior_name="Runner", archetype=archetype)
    commands, expected = arena_script(d, STEPS, seed=7)
    assert sum(1 for c in commands if c.startswith("reset")) > 20, "many episodes, every kind of end"
    compare(expected, play(compiled(d), "arena", d, commands))


@pytest.mark.parametrize("action", [{"type": "discrete", "size": 5}, {"type": "discrete", "branches": [3, 3]},
                                    {"type": "hybrid", "size": 2, "branches": [2]}],
                         ids=["discrete5", "branches", "hybrid"])
def test_every_action_kind_matches_the_simulator(action, compiled):
    d = build_behavior(behavior_name="Runner", archetype="navigation", action_space=action)
    commands, expected = arena_script(d, 3_000, seed=3)
    compare(expected, play(compiled(d), "arena", d, commands))


# ------------------------------------------------------------------------------------- the other worlds
def corridor_script(definition, steps: int, seed: int):
    task = make_task(definition, 1, seed)
    rng = np.random.default_rng(seed)
    obs = task.reset()[0][0]
    commands, expected = [f"reset {int(task.cue[0])}"], [("O", obs[0].astype(np.float64))]
    for _ in range(steps):
        goal_x = -2.5 if task.cue[0] == 0 else 2.5  # towards the junction, then (mostly) the cued goal
        target = np.array([0.0 if task.pos[0, 1] < 1.0 else goal_x * (1 if rng.random() < 0.8 else -1), 3.0])
        act = np.clip((target - task.pos[0]) + rng.normal(0, 0.4, 2), -1, 1).astype(np.float32)[None]
        frame = task.step([(act, np.zeros((1, 0), np.int64))])[0]
        commands.append(f"step {_f(act[0])}")
        expected.append(("R", np.array([frame.reward[0], frame.done[0], frame.interrupted[0], 0.0], np.float64)))
        if frame.done[0]:
            expected.append(("T", frame.obs[0][0].astype(np.float64)))
            obs = task.restart([frame])[0][0]
            commands.append(f"reset {int(task.cue[0])}")
            expected.append(("O", obs[0].astype(np.float64)))
        else:
            expected.append(("O", frame.obs[0][0].astype(np.float64)))
    return commands, expected


def test_the_corridor_agent_matches_the_simulator(compiled):
    d = build_behavior(behavior_name="Hall", archetype="corridor")
    commands, expected = corridor_script(d, STEPS, seed=5)
    assert sum(1 for c in commands if c.startswith("reset")) > 100
    compare(expected, play(compiled(d), "corridor", d, commands))


def pads_script(definition, steps: int, seed: int):
    task = make_task(definition, 1, seed)
    rng = np.random.default_rng(seed)

    def reset_line() -> str:
        return f"reset {_f(task.pads[0])} {_f(task.pos[0])} {float(task.radius[0])!r}"

    obs = task.reset()[0][0]
    commands, expected = [reset_line()], [("O", obs.ravel().astype(np.float64))]
    for _ in range(steps):
        # each agent heads for "its" pad (agent i for pad i, swapped now and then), with noise
        swap = rng.random() < 0.3
        target = task.pads[0][::-1] if swap else task.pads[0]
        act = np.clip(target - task.pos[0] + rng.normal(0, 0.5, (2, 2)), -1, 1).astype(np.float32)
        frame = task.step([(act, np.zeros((2, 0), np.int64))])[0]
        commands.append(f"step {_f(act)}")
        rows = [v for i in range(2) for v in (frame.reward[i], frame.done[i], frame.interrupted[i])]
        expected.append(("R", np.array([*rows, frame.group_reward[0]], np.float64)))
        if frame.done[0]:
            expected.append(("T", frame.obs[0].ravel().astype(np.float64)))
            obs = task.restart([frame])[0][0]
            commands.append(reset_line())
            expected.append(("O", obs.ravel().astype(np.float64)))
        else:
            expected.append(("O", frame.obs[0].ravel().astype(np.float64)))
    return commands, expected


def test_the_pads_agents_and_their_arena_match_the_simulator(compiled):
    d = build_behavior(behavior_name="Pair", archetype="pads")
    commands, expected = pads_script(d, STEPS, seed=11)
    assert sum(1 for c in commands if c.startswith("reset")) > 20
    compare(expected, play(compiled(d), "pads", d, commands))


def duel_script(definition, steps: int, seed: int):
    task = make_task(definition, 1, seed)
    rng = np.random.default_rng(seed)

    def reset_line() -> str:
        return f"reset {_f(task.flag[0])} {_f(task.pos[0])}"

    obs = task.reset()
    commands, expected = [reset_line()], [("O", np.concatenate([obs[0][0][0], obs[1][0][0]]).astype(np.float64))]
    for _ in range(steps):
        acts = [np.clip(np.array([[0.6, 0.0]]) + rng.normal(0, 0.6, (1, 2)), -1, 1).astype(np.float32)
                for _ in range(2)]
        frames = task.step([(a, np.zeros((1, 0), np.int64)) for a in acts])
        commands.append(f"step {_f(acts[0])} {_f(acts[1])}")
        rows = [v for f in frames for v in (f.reward[0], f.done[0], f.interrupted[0])]
        expected.append(("R", np.array([*rows, 0.0], np.float64)))
        both = np.concatenate([frames[0].obs[0][0], frames[1].obs[0][0]]).astype(np.float64)
        if frames[0].done[0]:
            expected.append(("T", both))
            obs = task.restart(frames)
            commands.append(reset_line())
            expected.append(("O", np.concatenate([obs[0][0][0], obs[1][0][0]]).astype(np.float64)))
        else:
            expected.append(("O", both))
    return commands, expected


def test_the_duel_agents_match_the_simulator(compiled):
    d = build_behavior(behavior_name="Racer", archetype="duel")
    commands, expected = duel_script(d, STEPS, seed=13)
    assert sum(1 for c in commands if c.startswith("reset")) > 20
    compare(expected, play(compiled(d), "duel", d, commands))


# ------------------------------------------------------------------------------------------- it can fail
def test_the_differential_test_catches_a_one_sided_change(compiled, tmp_path):
    """Change one constant on one side only — the C# template's step penalty — and the comparison fails."""
    from mlops_unity_pipeline.generate import base as generate_base

    changed = tmp_path / "templates"
    shutil.copytree(Path(generate_base.__file__).with_name("templates"), changed)
    agent = changed / "agent.cs.j2"
    agent.write_text(agent.read_text().replace("AddReward(stepPenalty);", "AddReward(stepPenalty * 1.5f);"))
    d = build_behavior(behavior_name="Runner", archetype="reach_target")
    commands, expected = arena_script(d, 200, seed=1)
    compare(expected, play(compiled(d), "arena", d, commands))  # the real one agrees
    with pytest.raises(AssertionError, match=r"\(R\)"):
        compare(expected, play(compile_agent(d, tmp_path, changed), "arena", d, commands))
    moved = dataclasses.replace(d, params=dataclasses.replace(d.params, step_penalty=-0.002))  # the Python side
    commands, expected = arena_script(moved, 200, seed=1)
    with pytest.raises(AssertionError, match=r"\(R\)"):
        compare(expected, play(compiled(d), "arena", d, commands))
