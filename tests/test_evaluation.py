import sys
from pathlib import Path

import numpy as np
import pytest

from mlops_unity_pipeline.behavior import build_behavior
from mlops_unity_pipeline.evaluation.evaluate import _wilson, evaluate_policy, random_policy
from mlops_unity_pipeline.evaluation.onnx_policy import ContractError, OnnxPolicy

sys.path.insert(0, str(Path(__file__).parent))
from onnx_policies import contract_model, make_policy  # noqa: E402


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


EXPORTS = {  # name: (make_policy arguments, the kind it is classified as)
    "vector": (dict(obs_shapes=[(12,)], continuous=2), "v3"),
    "several-observations-camera-branches": (dict(obs_shapes=[(12,), (3, 8, 8)], branches=(3, 2)), "visual"),
    "recurrent": (dict(obs_shapes=[(6,)], continuous=2, memory=4), "recurrent"),
    "hybrid": (dict(obs_shapes=[(6,)], continuous=2, branches=(3,)), "hybrid"),
    "v2-log-probabilities": (dict(obs_shapes=[(6,), (4,)], branches=(5,), version=2), "v2"),
}


@pytest.mark.parametrize("name", sorted(EXPORTS))
def test_every_export_kind_is_classified_and_acts(tmp_path, name):
    from mlops_unity_pipeline.evaluation.onnx_policy import PolicySpec
    from mlops_unity_pipeline.evaluation.policies import ModelPolicy

    kwargs, kind = EXPORTS[name]
    policy = OnnxPolicy(make_policy(tmp_path / f"{name}.onnx", **kwargs))
    spec = PolicySpec(tuple(kwargs["obs_shapes"]), kwargs.get("continuous", 0), kwargs.get("branches", ()))
    assert policy.contract.kind == kind and policy.not_evaluable() is None and policy.check_spec(spec) == []
    rng = np.random.default_rng(0)
    obs = [rng.random((4, *s), dtype=np.float32) for s in kwargs["obs_shapes"]]
    out = ModelPolicy(policy, spec).act(obs, None, np.arange(4))
    assert out.continuous.shape == (4, spec.continuous) and out.discrete.shape == (4, len(spec.branches))
    assert np.all(np.abs(out.continuous) <= 1) and all((out.discrete[:, i] < b).all()
                                                       for i, b in enumerate(spec.branches))
    if spec.branches:  # a mask that leaves one action per branch: that action is taken
        mask = np.ones((4, sum(spec.branches)), bool)
        allowed = np.cumsum((0, *spec.branches))[:-1] + np.array(spec.branches) - 1  # each branch's last action
        mask[:, allowed] = False
        masked = ModelPolicy(policy, spec).act(obs, mask, np.arange(4)).discrete
        assert (masked == np.array(spec.branches) - 1).all()


def test_recurrent_memory_is_carried_per_episode_and_reset_when_it_ends(tmp_path):
    from mlops_unity_pipeline.evaluation.onnx_policy import PolicySpec
    from mlops_unity_pipeline.evaluation.policies import ModelPolicy

    model = OnnxPolicy(make_policy(tmp_path / "lstm.onnx", [(6,)], continuous=2, memory=4))
    policy = ModelPolicy(model, PolicySpec(((6,),), 2))
    obs = [np.zeros((2, 6), np.float32)]
    for _ in range(3):  # the test model's memory grows by one per decision; its first action reads it
        out = policy.act(obs, None, np.array([7, 8]))
    assert out.memory[:, 0].tolist() == [3.0, 3.0]
    policy.end(np.array([7]))  # agent 7's episode ended: its next episode starts from zero memory
    out = policy.act(obs, None, np.array([7, 8]))
    assert out.memory[:, 0].tolist() == [1.0, 4.0]


def test_exports_older_than_api_v2_are_refused_with_the_reason_before_they_run(tmp_path):
    import subprocess

    path = contract_model(tmp_path / "legacy.onnx", {"vector_observation": ["batch", 12]},
                          {"is_continuous_control": [1], "action_output_shape": [2]}, {"action": ["batch", 12]})
    policy = OnnxPolicy(path)
    assert policy.contract.kind == "legacy" and "API before v2" in policy.not_evaluable()
    with pytest.raises(ContractError, match="API before v2"):
        policy.act(np.zeros((1, 12), np.float32))
    spec = tmp_path / "spec.yaml"
    spec.write_text("asset_id: n\nname: Nav\ndescription: avoid obstacles\n")
    r = subprocess.run([sys.executable, "-m", "mlops_unity_pipeline", "evaluate", str(path), "--spec", str(spec)],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 2 and "API before v2" in r.stderr and "Traceback" not in r.stderr, r.stderr


def test_a_file_that_is_no_policy_is_named_as_such(tmp_path):
    with pytest.raises(ContractError, match="not an ML-Agents policy: no observation inputs"):
        OnnxPolicy(contract_model(tmp_path / "x.onnx", {"image": ["batch", 3]}, {"score": [1]}))
    (tmp_path / "passwd.onnx").write_bytes(b"root:x:0:0:root:/root:/bin/bash\n")
    with pytest.raises(ContractError, match="not a loadable ONNX model"):
        OnnxPolicy(tmp_path / "passwd.onnx")
