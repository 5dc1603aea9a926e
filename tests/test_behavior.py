import numpy as np
import pytest

from mlops_unity_pipeline.behavior import BehaviorDefinition, BehaviorError, build_behavior, choose_archetype
from mlops_unity_pipeline.behavior.simulator import NullSimulator, Simulator


@pytest.mark.parametrize(
    "description, archetype",
    [
        ("Reach target position", "reach_target"),
        ("Reach target position while avoiding obstacles", "navigation"),
        ("Nightly retraining for navigation behavior", "navigation"),
        ("Patrol between waypoints and avoid collisions", "patrol"),
        ("Something vague", "reach_target"),
    ],
)
def test_archetype_from_description(description, archetype):
    assert choose_archetype("behavior", description) == archetype


def test_archetype_override_and_unknown():
    assert choose_archetype("behavior", "reach the target", "Patrol") == "patrol"
    with pytest.raises(BehaviorError, match="choose one of"):
        choose_archetype("behavior", "", "dance")


def test_seed_001_observation_space_is_honoured_and_completed():
    d = build_behavior(behavior_name="SimpleAgent", description="Reach target position while avoiding obstacles",
                       observation_space={"raycast": 8, "velocity": 2},
                       action_space={"type": "continuous", "size": 2})
    assert [(c.key, c.size) for c in d.observations] == [("raycast", 8), ("velocity", 2), ("target", 2)]
    assert d.observation_size == 12 and d.action.continuous == 2


def test_defaults_per_archetype():
    sizes = {a: build_behavior(behavior_name="A", archetype=a).observation_size
             for a in ("reach_target", "navigation", "patrol")}
    assert sizes == {"reach_target": 6, "navigation": 12, "patrol": 13}


@pytest.mark.parametrize(
    "obs, act, words",
    [
        ({"lidar": 4}, None, "unknown; known keys"),
        ({"velocity": 3}, None, "must be 2"),
        ({"raycast": 100}, None, "between 1 and 64"),
        ({"rays": 4, "raycast": 4}, None, "twice"),
        ({"waypoint_progress": 1}, None, "only exists for patrol"),
        (None, {"type": "continuous", "size": 3}, "must be 2"),
        (None, {"type": "discrete", "branches": [4]}, "not supported"),
    ],
)
def test_bad_spaces_are_rejected_with_the_key(obs, act, words):
    with pytest.raises(BehaviorError, match=words):
        build_behavior(behavior_name="A", description="reach", observation_space=obs, action_space=act)


def test_definition_json_roundtrip():
    d = build_behavior(behavior_name="P", archetype="patrol", action_space={"type": "discrete", "branches": [3, 3]})
    assert BehaviorDefinition.from_dict(d.to_dict()) == d


def _run(sim, policy, steps):
    succ = eps = 0
    obs = sim.observe()
    for _ in range(steps):
        r = sim.step(policy(obs))
        succ += int(r.success.sum())
        eps += int(r.done.sum())
        obs = sim.reset_done(r.done)
    return succ / max(1, eps)


@pytest.mark.parametrize("archetype", ["reach_target", "navigation", "patrol"])
def test_simulator_is_reproducible_and_rewards_the_right_thing(archetype):
    d = build_behavior(behavior_name="A", archetype=archetype)
    a, b = Simulator(d, 64, seed=7), Simulator(d, 64, seed=7)
    acts = np.random.default_rng(0).uniform(-1, 1, (50, 64, 2)).astype(np.float32)
    for t in range(50):
        ra, rb = a.step(acts[t]), b.step(acts[t])
        np.testing.assert_array_equal(ra.obs, rb.obs)
        np.testing.assert_array_equal(ra.reward, rb.reward)
        a.reset_done(ra.done)
        b.reset_done(rb.done)
    assert ra.obs.shape == (64, d.observation_size) and ra.obs.dtype == np.float32
    # heading straight for the goal (u = +1 in the goal frame) beats random actions by far
    rng = np.random.default_rng(1)
    expert = _run(Simulator(d, 128, seed=3), lambda o: np.tile([1.0, 0.0], (len(o), 1)), 600)
    random = _run(Simulator(d, 128, seed=3), lambda o: rng.uniform(-1, 1, (len(o), 2)), 600)
    assert expert > 0.6 and expert > random + 0.4


def test_discrete_actions_move_the_agent():
    for branches, forward in (((5,), [[1]]), ((3, 3), [[1, 0]])):
        d = build_behavior(behavior_name="A", description="reach",
                           action_space={"type": "discrete", "branches": list(branches)})
        sim = Simulator(d, 16, seed=0)
        start = sim.prev_dist.copy()
        for _ in range(5):
            sim.step(np.repeat(np.array(forward), 16, axis=0))
        assert (sim.prev_dist < start).all()


def test_collision_ends_episode_with_penalty():
    d = build_behavior(behavior_name="A", archetype="navigation")
    sim = Simulator(d, 1, seed=0)
    sim.pos[0] = sim.obstacles[0, 0] + np.array([sim.obstacle_r[0, 0] + 0.3, 0], np.float32)
    sim.vel[0] = 0
    sim.observe()  # actions apply in the goal frame of the last observation
    hit = False
    for _ in range(20):  # push the agent into the obstacle (world -x) through its goal-frame actions
        u = sim.goals[0, sim.goal_idx[0]] - sim.pos[0]  # the goal frame: u towards the goal, v = u turned left
        u = u / np.linalg.norm(u)
        v = np.array([-u[1], u[0]])
        want = np.array([-1.0, 0.0])
        r = sim.step(np.array([[want @ u, want @ v]], np.float32))
        if r.done[0]:
            hit = bool(r.collision[0])
            assert r.reward[0] < -0.4
            break
    assert hit


def test_null_simulator_is_constant():
    d = build_behavior(behavior_name="A", archetype="navigation")
    sim = NullSimulator(d, 4)
    r = sim.step(np.zeros((4, 2)))
    assert (r.obs == 0.5).all() and (r.reward == 0).all()
