"""Load an exported ML-Agents policy with onnxruntime, check its contract and act with it.

The contract (ML-Agents model API v3; v2 is read too): inputs ``obs_0..obs_{n-1}`` [+ ``action_masks``]
[+ ``recurrent_in``]; outputs ``version_number`` (3.0), ``memory_size``, and per action kind
``continuous_actions``/``continuous_action_output_shape``/``deterministic_continuous_actions`` or
``discrete_actions``/``discrete_action_output_shape``/``deterministic_discrete_actions``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..behavior.definition import BehaviorDefinition


class ContractError(ValueError):
    """The model does not match the ML-Agents contract or the behavior spec."""


@dataclass
class ModelContract:
    version: int
    observation_shapes: list[tuple[int, ...]]
    continuous: int
    branches: tuple[int, ...]
    memory_size: int
    inputs: dict[str, tuple[str, list]] = field(default_factory=dict)
    outputs: dict[str, tuple[str, list]] = field(default_factory=dict)
    opset: int | None = None

    def to_dict(self) -> dict:
        return {
            "version": self.version,
            "observation_shapes": [list(s) for s in self.observation_shapes],
            "continuous_actions": self.continuous,
            "discrete_branches": list(self.branches),
            "memory_size": self.memory_size,
            "inputs": {k: {"type": t, "shape": s} for k, (t, s) in self.inputs.items()},
            "outputs": {k: {"type": t, "shape": s} for k, (t, s) in self.outputs.items()},
        }


def _session(path: Path):
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    opts.inter_op_num_threads = 1
    opts.log_severity_level = 3
    return ort.InferenceSession(str(path), sess_options=opts, providers=["CPUExecutionProvider"])


class OnnxPolicy:
    """A batched policy over an ML-Agents ONNX model."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        if not self.path.is_file():
            raise ContractError(f"model file not found: {self.path}")
        try:
            self.session = _session(self.path)
        except Exception as exc:  # onnxruntime raises its own exception types
            raise ContractError(f"{self.path} is not a loadable ONNX model: {exc}") from None
        self.contract = self._read_contract()

    def _read_contract(self) -> ModelContract:
        inputs = {i.name: (i.type, list(i.shape)) for i in self.session.get_inputs()}
        outputs = {o.name: (o.type, list(o.shape)) for o in self.session.get_outputs()}
        obs_names = sorted((n for n in inputs if n.startswith("obs_")), key=lambda n: int(n[4:]))
        if not obs_names and "vector_observation" in inputs:
            obs_names = ["vector_observation"]
        if not obs_names:
            raise ContractError(f"{self.path}: no obs_<i> inputs; not an ML-Agents policy")
        self._obs_names = obs_names
        shapes = [tuple(int(d) for d in inputs[n][1][1:]) for n in obs_names]
        constants = [n for n in ("version_number", "memory_size", "continuous_action_output_shape",
                                 "discrete_action_output_shape") if n in outputs]
        missing = {"version_number", "memory_size"} - set(constants)
        if missing:
            raise ContractError(f"{self.path}: missing outputs {sorted(missing)} required by the ML-Agents contract")
        feed = self._feed(np.zeros((1, *shapes[0]), np.float32) if len(shapes) == 1 else
                          [np.zeros((1, *s), np.float32) for s in shapes], inputs)
        values = dict(zip(constants, self.session.run(constants, feed), strict=True))
        version = int(np.asarray(values["version_number"]).reshape(-1)[0])
        memory = int(np.asarray(values["memory_size"]).reshape(-1)[0])
        cont = int(np.asarray(values["continuous_action_output_shape"]).reshape(-1)[0]) \
            if "continuous_action_output_shape" in values and "continuous_actions" in outputs else 0
        branches: tuple[int, ...] = ()
        if "discrete_action_output_shape" in values:
            branches = tuple(int(x) for x in np.asarray(values["discrete_action_output_shape"]).reshape(-1))
        if version not in (2, 3):
            raise ContractError(f"{self.path}: version_number {version} is not 2 or 3")
        return ModelContract(version, shapes, cont, branches, memory, inputs, outputs)

    def _feed(self, obs, inputs=None) -> dict[str, np.ndarray]:
        inputs = inputs or {i.name: (i.type, i.shape) for i in self.session.get_inputs()}
        obs_list = obs if isinstance(obs, list) else [obs]
        batch = obs_list[0].shape[0]
        feed = {n: np.asarray(o, np.float32) for n, o in zip(self._obs_names, obs_list, strict=True)}
        if "action_masks" in inputs:
            width = inputs["action_masks"][1][1]
            if not isinstance(width, int):
                width = sum(self.contract.branches)
            feed["action_masks"] = np.ones((batch, width), np.float32)
        if "recurrent_in" in inputs:
            feed["recurrent_in"] = np.zeros((batch, 1, int(inputs["recurrent_in"][1][2])), np.float32)
        return feed

    def act(self, obs: np.ndarray, deterministic: bool = True) -> np.ndarray:
        """Actions for a batch of single-vector observations: float [B, n] or int64 [B, branches]."""
        c = self.contract
        if c.continuous:
            name = "deterministic_continuous_actions" if deterministic else "continuous_actions"
        else:
            name = "deterministic_discrete_actions" if deterministic else "discrete_actions"
        if name not in c.outputs:
            name = name.replace("deterministic_", "")
        return self.session.run([name], self._feed(obs))[0]

    def check_against(self, definition: BehaviorDefinition) -> list[str]:
        """Differences between the model and the behavior spec (empty when it fits)."""
        c, problems = self.contract, []
        if c.version != 3:
            problems.append(f"model API version {c.version}, expected 3")
        if c.observation_shapes != [(definition.observation_size,)]:
            problems.append(f"observation shapes {c.observation_shapes}, expected [({definition.observation_size},)]")
        if c.continuous != definition.action.continuous:
            problems.append(f"{c.continuous} continuous actions, expected {definition.action.continuous}")
        if c.branches != definition.action.branches:
            problems.append(f"discrete branches {list(c.branches)}, expected {list(definition.action.branches)}")
        if c.memory_size:
            problems.append(f"recurrent memory of size {c.memory_size} is not supported by the evaluator")
        return problems
