import sys
from pathlib import Path

import numpy as np
import pytest

from mlops_unity_pipeline.behavior import build_behavior
from mlops_unity_pipeline.evaluation.evaluate import _wilson, evaluate_policy, random_policy
from mlops_unity_pipeline.evaluation.onnx_policy import ContractError, OnnxPolicy

sys.path.insert(0, str(Path(__file__).parent))
from onnx_policies import contract_model  # noqa: E402


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


KINDS = {  # name: (inputs, constants, extra outputs, kind, words in the refusal)
    "visual": ({"visual_observation_0": ["batch", 84, 84, 3], "vector_observation": ["batch", 8]},
               {"version_number": [2], "memory_size": [0], "action_output_shape": [2]}, {"action": ["batch", 8]},
               "visual", "visual-observation model"),
    "recurrent": ({"obs_0": ["batch", 12], "recurrent_in": ["batch", 1, 64]},
                  {"version_number": [3], "memory_size": [64], "continuous_action_output_shape": [2]},
                  {"continuous_actions": ["batch", 12]}, "recurrent", "recurrent model"),
    "hybrid": ({"obs_0": ["batch", 12]},
               {"version_number": [3], "memory_size": [0], "continuous_action_output_shape": [2],
                "discrete_action_output_shape": [3]}, {"continuous_actions": ["batch", 12]}, "hybrid", "hybrid-action"),
    "v2": ({"obs_0": ["batch", 12]}, {"version_number": [2], "memory_size": [0], "discrete_action_output_shape": [5]},
           {"discrete_actions": ["batch", 12]}, "v2", "log-probabilities, not actions"),
    "legacy": ({"vector_observation": ["batch", 12]}, {"is_continuous_control": [1], "action_output_shape": [2]},
               {"action": ["batch", 12]}, "legacy", "API before v2"),
}


@pytest.mark.parametrize("name", sorted(KINDS))
def test_every_model_is_classified_and_refused_with_the_reason_before_it_runs(tmp_path, name):
    import subprocess

    inputs, constants, extra, kind, words = KINDS[name]
    path = contract_model(tmp_path / f"{name}.onnx", inputs, constants, extra)
    policy = OnnxPolicy(path)
    assert policy.contract.kind == kind and words in policy.not_evaluable()
    with pytest.raises(ContractError, match=words):
        policy.act(np.zeros((1, 12), np.float32))
    spec = tmp_path / "spec.yaml"
    spec.write_text("asset_id: n\nname: Nav\ndescription: avoid obstacles\n")
    r = subprocess.run([sys.executable, "-m", "mlops_unity_pipeline", "evaluate", str(path), "--spec", str(spec)],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 2 and words in r.stderr and "Traceback" not in r.stderr, r.stderr


def test_a_file_that_is_no_policy_is_named_as_such(tmp_path):
    with pytest.raises(ContractError, match="not an ML-Agents policy: no observation inputs"):
        OnnxPolicy(contract_model(tmp_path / "x.onnx", {"image": ["batch", 3]}, {"score": [1]}))
    (tmp_path / "passwd.onnx").write_bytes(b"root:x:0:0:root:/root:/bin/bash\n")
    with pytest.raises(ContractError, match="not a loadable ONNX model"):
        OnnxPolicy(tmp_path / "passwd.onnx")
