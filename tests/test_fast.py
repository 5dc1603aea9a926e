"""The `fast` trainer: learning with a fixed seed, ML-Agents' outputs and ONNX contract, resume, reporting."""

from __future__ import annotations

import json

import numpy as np
import pytest

pytest.importorskip("torch", reason="the fast extra (torch) is not installed")
import onnxruntime as ort  # noqa: E402
import torch  # noqa: E402

from mlops_unity_pipeline import RLTrainingConfig, TrainingJob, UnityAssetSpec, UnityMLOpsOrchestrator  # noqa: E402
from mlops_unity_pipeline.behavior import ActionSpec, BehaviorDefinition, ObservationComponent  # noqa: E402
from mlops_unity_pipeline.evaluation.onnx_policy import OnnxPolicy  # noqa: E402
from mlops_unity_pipeline.evaluation.tfevents import read_scalars  # noqa: E402
from mlops_unity_pipeline.fast.export import export_onnx  # noqa: E402
from mlops_unity_pipeline.fast.loss import Minibatch, continuous_grads, discrete_grads  # noqa: E402
from mlops_unity_pipeline.fast.network import ActorCritic, Adam  # noqa: E402
from mlops_unity_pipeline.fast.ppo import unsupported_options  # noqa: E402
from mlops_unity_pipeline.fast.rollout import gae  # noqa: E402

pytestmark = pytest.mark.usefixtures("clean_build_env")
ASSET = UnityAssetSpec(asset_id="test-001", name="SimpleAgent", description="Reach target position")


def test_reach_target_learns_within_150k_steps(tmp_path):
    orch = UnityMLOpsOrchestrator(tmp_path / "runs", evaluation_episodes=500, show_progress=False)
    job = TrainingJob(job_id="fast", asset_spec=ASSET,
                      rl_config=RLTrainingConfig(trainer="fast", max_steps=150_000, seed=3, summary_freq=25_000))
    r = orch.execute_training_job_sync(job)
    assert r.succeeded, (r.failed_stage, r.error, r.log_tail)
    assert r.metrics["evaluation"]["model"]["success_rate"] >= 0.70
    run = tmp_path / "runs" / "fast" / "training" / "fast"
    status = json.loads((run / "run_logs" / "training_status.json").read_text())
    assert status["SimpleAgent"]["final_checkpoint"]["steps"] >= 150_000 and "metadata" in status
    files = sorted((run / "SimpleAgent").glob("events.out.tfevents.*"))  # the trainer's and the evaluation's
    tags = set().union(*(read_scalars(f) for f in files))  # one run in TensorBoard, which reads them all
    assert {"Environment/Cumulative Reward", "Environment/Episode Length", "Policy/Entropy", "Losses/Policy Loss",
            "Losses/Value Loss", "Policy/Learning Rate", "Policy/Epsilon", "Policy/Beta",
            "Evaluation/Success Rate", "Evaluation/Random Policy Success Rate"} <= tags
    assert (run / "SimpleAgent" / "checkpoint.pt").is_file()


def test_discrete_actions_learn(tmp_path):
    """The categorical branch of the loss, end to end: five discrete moves, 60k steps."""
    asset = UnityAssetSpec(asset_id="grid-001", name="GridAgent", description="Reach target position",
                           action_space={"type": "discrete", "branches": [5]})
    orch = UnityMLOpsOrchestrator(tmp_path / "runs", evaluation_episodes=300, show_progress=False)
    cfg = RLTrainingConfig(trainer="fast", max_steps=60_000, seed=3)
    r = orch.execute_training_job_sync(TrainingJob(job_id="grid", asset_spec=asset, rl_config=cfg))
    assert r.succeeded, (r.failed_stage, r.error, r.log_tail)
    evaluation = r.metrics["evaluation"]
    assert evaluation["model"]["success_rate"] >= 0.7
    assert evaluation["model"]["success_rate"] > evaluation["random_baseline"]["success_rate"] + 0.3


def _minibatch(net: ActorCritic, x: torch.Tensor, branches, seed: int) -> Minibatch:
    """Actions, and old log-probs and values near the current ones: some ratios and values are clipped, some not."""
    from mlops_unity_pipeline.fast.reference import ReferenceActorCritic

    g = torch.Generator().manual_seed(seed)
    B = len(x)
    if branches is None:
        actions = torch.randn(B, 2, generator=g)
    else:
        actions = torch.stack([torch.randint(0, b, (B,), generator=g) for b in branches], 1)
    model = ReferenceActorCritic.from_fast(net)
    with torch.no_grad():
        _, value = model(x)
        logp = _logp(model, x, actions, branches)
    mb = Minibatch(actions, logp + 0.3 * torch.randn(B, generator=g), torch.randn(B, generator=g),
                   value + torch.randn(B, generator=g), value + 0.3 * torch.randn(B, generator=g))
    ratio = torch.exp(logp - mb.old_logp)
    assert ((ratio - 1).abs() > 0.2).any() and ((ratio - 1).abs() < 0.2).any()
    return mb


def _logp(model, x, actions, branches):
    out, _ = model(x)
    if branches is None:
        return torch.distributions.Normal(out, torch.exp(model.log_std).expand_as(out)).log_prob(actions).sum(1)
    return sum(torch.distributions.Categorical(logits=logits).log_prob(actions[:, i])
               for i, logits in enumerate(out.split(list(branches), 1)))


@pytest.mark.parametrize("branches", [None, (3, 2)])
def test_the_written_out_update_equals_the_autograd_reference(branches):
    """fast/network.py + fast/loss.py (hand-derived) against fast/reference.py (autograd, torch.optim.Adam): the
    gradients of one minibatch, the loss's parts, and the parameters after 5 Adam steps on fresh minibatches."""
    from mlops_unity_pipeline.fast.reference import ReferenceActorCritic, update

    torch.manual_seed(0)
    n_out = 2 if branches is None else sum(branches)
    net = ActorCritic(6, n_out, 16, 2, continuous=branches is None, normalize=False)
    model = ReferenceActorCritic.from_fast(net)
    torch.testing.assert_close(model.flat(), net.flat, rtol=0, atol=0)
    opt, ref_opt = Adam(net.flat, net.grad, lr=3e-3), torch.optim.Adam(model.parameters(), lr=3e-3)
    for step in range(5):
        x = torch.randn(256, 6)
        mb = _minibatch(net, x, branches, seed=step)
        ref_stats = update(model, ref_opt, x, mb, branches, eps=0.2, beta=0.01)
        out, value = net.forward(x)
        if branches is None:
            g = continuous_grads(out, value, net.params["log_std"], mb, 0.2, 0.01)
        else:
            g = discrete_grads(out, value, branches, mb, 0.2, 0.01)
        net.backward(g.out, g.value, g.log_std)
        torch.testing.assert_close(net.grad, model.flat(grad=True), rtol=1e-4, atol=1e-6)
        torch.testing.assert_close(g.stats, ref_stats, rtol=1e-5, atol=1e-6)
        opt.step()
        torch.testing.assert_close(net.flat, model.flat(), rtol=1e-4, atol=1e-6)
    assert not torch.equal(model.flat(), ReferenceActorCritic.from_fast(
        ActorCritic(6, n_out, 16, 2, continuous=branches is None, normalize=False)).flat()), "the steps moved it"


def test_the_comparison_fails_when_the_written_out_gradient_is_wrong():
    """The check can fail: a loss term the written-out gradient leaves out (the entropy bonus) is caught."""
    from mlops_unity_pipeline.fast.reference import ReferenceActorCritic, ppo_loss

    torch.manual_seed(1)
    net = ActorCritic(6, 5, 16, 2, continuous=False, normalize=False)
    model = ReferenceActorCritic.from_fast(net)
    x = torch.randn(256, 6)
    mb = _minibatch(net, x, (3, 2), seed=9)
    ppo_loss(model, x, mb, (3, 2), 0.2, 0.01)[0].backward()
    out, value = net.forward(x)
    g = discrete_grads(out, value, (3, 2), mb, 0.2, beta=0.0)  # as if the entropy term's gradient were forgotten
    net.backward(g.out, g.value, g.log_std)
    with pytest.raises(AssertionError):
        torch.testing.assert_close(net.grad, model.flat(grad=True), rtol=1e-4, atol=1e-6)


def test_gae_matches_the_textbook_recursion():
    """Per agent, backwards: A_t = delta_t + gamma * lambda * A_{t+1}, restarted at every cut, where the next value
    is the bootstrap value (or 0 for a true terminal, which the caller encodes as next_value 0)."""
    rng = np.random.default_rng(0)
    T, N, gamma, lam = 50, 7, 0.99, 0.95
    rewards, values, next_values = (rng.normal(size=(T, N)).astype(np.float32) for _ in range(3))
    cut = rng.random((T, N)) < 0.1
    cut[-1] = True
    expected = np.zeros((T, N))
    for n in range(N):
        following = 0.0
        for t in reversed(range(T)):
            v_next = next_values[t, n] if cut[t, n] else values[t + 1, n]
            following = (0.0 if cut[t, n] else following)
            following = rewards[t, n] + gamma * v_next - values[t, n] + gamma * lam * following
            expected[t, n] = following
    np.testing.assert_allclose(gae(rewards, values, next_values, cut, gamma, lam), expected, rtol=1e-5, atol=1e-5)


def _io(policy: OnnxPolicy):
    static = lambda shape: [d if isinstance(d, int) else "dyn" for d in shape]  # noqa: E731
    return ({k: (t, static(s)) for k, (t, s) in policy.contract.inputs.items()},
            {k: (t, static(s)) for k, (t, s) in policy.contract.outputs.items()})


@pytest.mark.parametrize("sample, obs, action", [
    ("3DBall.onnx", 8, ActionSpec(continuous=2)),
    ("Basic.onnx", 20, ActionSpec(branches=(3,))),
])
def test_onnx_contract_matches_mlagents_exports(tmp_path, samples, sample, obs, action):
    d = BehaviorDefinition("X", "reach_target", (ObservationComponent("raycast", obs),), action)
    export_onnx(ActorCritic.for_behavior(d, 32, 2, normalize=True), d, tmp_path / "fast.onnx")
    ours, theirs = OnnxPolicy(tmp_path / "fast.onnx"), OnnxPolicy(samples / "onnx" / sample)
    assert _io(ours) == _io(theirs), "same input/output names, dtypes and static shapes"
    c, t = ours.contract, theirs.contract
    assert (c.version, c.memory_size, c.continuous, c.branches, c.observation_shapes) == \
        (t.version, t.memory_size, t.continuous, t.branches, t.observation_shapes)
    batch = np.random.default_rng(0).normal(size=(4, obs)).astype(np.float32)
    det = ours.act(batch)
    assert det.shape == (4, action.continuous or len(action.branches))
    if action.is_continuous:
        assert np.all(np.abs(det) <= 1.0)


@pytest.mark.parametrize("action", [ActionSpec(continuous=2), ActionSpec(branches=(3, 2))])
@pytest.mark.parametrize("normalize", [True, False])
def test_exported_model_computes_the_trained_actor(tmp_path, action, normalize):
    """The file is written from the weights, not traced: it must compute exactly what the rollout's actor did,
    normalizer included; its stochastic output must sample around it with the learned std, within the masks."""
    d = BehaviorDefinition("X", "reach_target", (ObservationComponent("raycast", 6),), action)
    net = ActorCritic.for_behavior(d, 32, 2, normalize=normalize)
    rng = np.random.default_rng(0)
    net.update_normalizer(rng.normal(2.0, 3.0, (500, 6)).astype(np.float32))
    with torch.no_grad():
        net.flat.add_(0.3 * torch.randn_like(net.flat))
    export_onnx(net, d, tmp_path / "fast.onnx")
    obs = rng.normal(2.0, 6.0, (256, 6)).astype(np.float32)
    out = net.numpy_actor()(obs)
    sess = ort.InferenceSession(str(tmp_path / "fast.onnx"))
    if action.is_continuous:
        stochastic, det = sess.run(["continuous_actions", "deterministic_continuous_actions"], {"obs_0": obs})
        np.testing.assert_allclose(det, np.clip(out, -3, 3) / 3, rtol=1e-5, atol=1e-6)
        many = np.repeat(obs[:1], 20000, axis=0)
        draws = sess.run(["continuous_actions"], {"obs_0": many})[0] * 3
        std = np.exp(net.params["log_std"].numpy())
        inside = np.abs(out[0]) + 3 * std < 3  # no clipping: a plain Gaussian
        np.testing.assert_allclose(draws.mean(0)[inside], out[0][inside], atol=0.05)
        np.testing.assert_allclose(draws.std(0)[inside], std[inside], rtol=0.05)
        assert stochastic.shape == det.shape and np.abs(stochastic).max() <= 1.0
    else:
        masks = np.ones((256, 5), np.float32)
        masks[::2, 0] = 0.0  # action 0 of branch 0 forbidden on even rows
        sampled, det = sess.run(["discrete_actions", "deterministic_discrete_actions"],
                                {"obs_0": obs, "action_masks": masks})
        logits = out.copy()
        logits[::2, 0] -= 1e8
        np.testing.assert_array_equal(det, np.stack([logits[:, :3].argmax(1), logits[:, 3:].argmax(1)], 1))
        assert sampled.dtype == np.int64 and (sampled[::2, 0] != 0).all()
        assert set(np.unique(sampled[:, 0])) <= {0, 1, 2} and set(np.unique(sampled[:, 1])) <= {0, 1}


def test_export_is_opset9_and_self_contained(tmp_path):
    import onnx

    d = BehaviorDefinition("X", "reach_target", (ObservationComponent("velocity", 2), ObservationComponent("target", 2),
                                                 ObservationComponent("position", 2)), ActionSpec(continuous=2))
    export_onnx(ActorCritic.for_behavior(d, 128, 2, normalize=True), d, tmp_path / "fast.onnx")
    model = onnx.load(str(tmp_path / "fast.onnx"))
    assert model.opset_import[0].version == 9, "the opset ML-Agents exports and Unity's inference engine loads"
    assert not any(f.name.endswith(".data") for f in tmp_path.iterdir()), "self-contained (legacy exporter)"


def test_resume_after_a_timeout(tmp_path):
    """No wall-clock assumption: the first run cannot finish 10M steps in its 3 s, whatever the machine's load."""
    orch = UnityMLOpsOrchestrator(tmp_path / "runs", evaluation_episodes=100, show_progress=False)
    long = RLTrainingConfig(trainer="fast", max_steps=10_000_000, checkpoint_interval=10_000, summary_freq=10_000)
    first = orch.execute_training_job_sync(TrainingJob(job_id="r", asset_spec=ASSET, rl_config=long, timeout_s=3.0))
    assert first.status == "failed" and "time limit" in first.error
    stopped = first.metrics["training"]["final_step"]
    assert 0 <= stopped < 10_000_000
    cfg = long.model_copy(update={"max_steps": stopped + 20_000})
    second = orch.execute_training_job_sync(TrainingJob(job_id="r", asset_spec=ASSET, rl_config=cfg))
    assert second.succeeded and second.metrics["training"]["final_step"] >= stopped + 20_000
    assert second.metrics["training"]["resumed_from_step"] == stopped
    log = (tmp_path / "runs" / "r" / "logs" / "trainer.log").read_text()
    assert "Resuming from" in log and f"at step {stopped}" in log


def test_unsupported_options_are_refused_before_any_work(tmp_path):
    """Honoured or refused at validation (not at the train stage), each option once, only options the user set."""
    from pydantic import ValidationError

    assert unsupported_options({"trainer_type": "sac"}) == ["trainer_type sac (the fast trainer is PPO only)"]
    with pytest.raises(ValidationError) as err:
        RLTrainingConfig(trainer="fast", max_steps=1000,
                         reward_signals={"extrinsic": {"gamma": 0.99}, "curiosity": {"strength": 0.02}},
                         network_settings={"memory": {"memory_size": 64}},
                         environment_parameters={"wall_height": {"sampler_type": "uniform",
                                                                 "sampler_parameters": {"min_value": 0,
                                                                                        "max_value": 4}}})
    text = str(err.value)
    assert "reward_signals.curiosity" in text and "environment_parameters" in text
    assert text.count("network_settings.memory") == 1, "listed once"
    with pytest.raises(ValidationError) as err:
        RLTrainingConfig(trainer="fast", algorithm="SAC")
    assert "trainer_type sac" in str(err.value) and "buffer_init_steps" not in str(err.value), "only what was set"
    assert not (tmp_path / "runs").exists()
