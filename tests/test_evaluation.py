import numpy as np
import pytest

from mlops_unity_pipeline.behavior import build_behavior
from mlops_unity_pipeline.evaluation.evaluate import _wilson, evaluate_policy, random_policy
from mlops_unity_pipeline.evaluation.onnx_policy import ContractError, OnnxPolicy


def test_reads_unity_sample_contracts(samples):
    ball = OnnxPolicy(samples / "onnx" / "3DBall.onnx").contract
    assert (ball.version, ball.observation_shapes, ball.continuous, ball.branches) == (3, [(8,)], 2, ())
    basic = OnnxPolicy(samples / "onnx" / "Basic.onnx")
    c = basic.contract
    assert (c.version, c.observation_shapes, c.continuous, c.branches) == (3, [(20,)], 0, (3,))
    acts = basic.act(np.zeros((4, 20), np.float32))
    assert acts.shape == (4, 1) and acts.dtype == np.int64


def test_contract_mismatch_is_reported(samples):
    d = build_behavior(behavior_name="A", description="reach")
    problems = OnnxPolicy(samples / "onnx" / "3DBall.onnx").check_against(d)
    assert any("observation shapes" in p for p in problems)


def test_not_a_model(tmp_path):
    bad = tmp_path / "x.onnx"
    bad.write_bytes(b"garbage")
    with pytest.raises(ContractError, match="not a loadable ONNX"):
        OnnxPolicy(bad)


def test_evaluation_counts_each_episode_once():
    d = build_behavior(behavior_name="A", description="reach")
    rep = evaluate_policy(lambda o: np.tile([1.0, 0.0], (len(o), 1)), d, episodes=200, seed=5)
    assert rep.episodes == 200 and rep.success_rate == 1.0 and rep.timeout_rate == 0.0
    rnd = evaluate_policy(random_policy(d, 5), d, episodes=200, seed=5)
    assert rnd.success_rate < 0.3 and rnd.reward_ci95[0] < rnd.mean_reward < rnd.reward_ci95[1]
    assert rep.mean_reward > rnd.reward_ci95[1]


def test_wilson_interval():
    lo, hi = _wilson(50, 100)
    assert lo < 0.5 < hi and round(hi - lo, 2) == 0.19
    assert _wilson(0, 10)[0] == 0.0 and _wilson(10, 10)[1] == pytest.approx(1.0)
