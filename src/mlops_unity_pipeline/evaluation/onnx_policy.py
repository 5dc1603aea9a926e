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


KINDS = ("v3", "v2", "recurrent", "visual", "hybrid", "legacy")
_OBS_PREFIXES = ("obs_", "vector_observation", "visual_observation_")
_DTYPES = {"tensor(float)": np.float32, "tensor(double)": np.float64, "tensor(int64)": np.int64,
           "tensor(int32)": np.int32, "tensor(bool)": np.bool_}


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
    kind: str = "v3"  # one of KINDS: what the evaluator can (v3) or cannot run

    def to_dict(self) -> dict:
        return {
            "kind": self.kind,
            "version": self.version,
            "observation_shapes": [list(s) for s in self.observation_shapes],
            "continuous_actions": self.continuous,
            "discrete_branches": list(self.branches),
            "memory_size": self.memory_size,
            "inputs": {k: {"type": t, "shape": s} for k, (t, s) in self.inputs.items()},
            "outputs": {k: {"type": t, "shape": s} for k, (t, s) in self.outputs.items()},
        }


def _dim(d: object) -> int:
    """A declared dimension; symbolic ones (a batch or sequence name) count as 1."""
    return d if isinstance(d, int) and d > 0 else 1


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
        """Classify the model from its declared inputs and outputs first; run it (on zeros of every declared
        input) only to read its constant outputs, so no model can make onnxruntime fail later."""
        inputs = {i.name: (i.type, list(i.shape)) for i in self.session.get_inputs()}
        outputs = {o.name: (o.type, list(o.shape)) for o in self.session.get_outputs()}
        obs_names = sorted((n for n in inputs if n.startswith(_OBS_PREFIXES)),
                           key=lambda n: (not n.startswith("obs_"), n))
        if not obs_names:
            raise ContractError(f"{self.path}: not an ML-Agents policy: no observation inputs (obs_<i>, "
                                f"vector_observation, visual_observation_<i>); its inputs are {sorted(inputs)[:8]}")
        self._obs_names = obs_names
        shapes = [tuple(_dim(d) for d in inputs[n][1][1:]) for n in obs_names]
        constants = [n for n in ("version_number", "memory_size", "continuous_action_output_shape",
                                 "discrete_action_output_shape", "action_output_shape", "is_continuous_control")
                     if n in outputs]
        if "version_number" not in constants and "action" in outputs:
            kind_hint = "legacy"
        elif not {"version_number", "memory_size"} <= set(constants):
            missing = sorted({"version_number", "memory_size"} - set(constants))
            raise ContractError(f"{self.path}: not an ML-Agents policy: missing outputs {missing} of the ML-Agents "
                                f"contract (outputs: {sorted(outputs)[:8]})")
        else:
            kind_hint = ""
        feed = {name: np.zeros((1, *(_dim(d) for d in shape[1:])), _DTYPES.get(t, np.float32))
                for name, (t, shape) in inputs.items()}
        try:
            values = dict(zip(constants, self.session.run(constants, feed), strict=True))
        except Exception as exc:  # onnxruntime's own error types: the model cannot even produce its constants
            raise ContractError(f"{self.path}: the model cannot be run to read its ML-Agents contract: "
                                f"{str(exc).splitlines()[0][:300]}") from None

        def first(name: str, default: int = 0) -> int:
            return int(np.asarray(values[name]).reshape(-1)[0]) if name in values else default

        version, memory = first("version_number", 1), first("memory_size")
        cont = first("continuous_action_output_shape") if "continuous_actions" in outputs else 0
        branches: tuple[int, ...] = ()
        if "discrete_action_output_shape" in values:
            branches = tuple(int(x) for x in np.asarray(values["discrete_action_output_shape"]).reshape(-1))
        if kind_hint == "legacy" or version not in (2, 3):
            kind = "legacy"
        elif any(len(s) != 1 for s in shapes) or any(n.startswith("visual_observation_") for n in obs_names):
            kind = "visual"
        elif memory or "recurrent_in" in inputs:
            kind = "recurrent"
        elif cont and branches:
            kind = "hybrid"
        else:
            kind = f"v{version}"
        return ModelContract(version, shapes, cont, branches, memory, inputs, outputs, kind=kind)

    def not_evaluable(self) -> str | None:
        """Why the evaluator cannot run this model on the vector simulator (None: it can)."""
        c = self.contract
        return {
            "legacy": f"an ML-Agents model of an API before v2 (version {c.version}; outputs "
                      f"{sorted(c.outputs)[:6]}): re-export it with ML-Agents >= 2.0",
            "visual": f"a visual-observation model (observations {c.observation_shapes}): the simulator produces "
                      "vector observations only",
            "recurrent": f"a recurrent model (memory size {c.memory_size}): the evaluator runs feed-forward policies",
            "hybrid": f"a hybrid-action model ({c.continuous} continuous + branches {list(c.branches)}): the "
                      "behaviors use one kind of action",
            "v2": "an ML-Agents API v2 model: its discrete outputs are log-probabilities, not actions; re-export it "
                  "with ML-Agents >= 2.0 (API v3)",
        }.get(c.kind)

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
        reason = self.not_evaluable()
        if reason:
            raise ContractError(f"{self.path} cannot be evaluated: {reason}")
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
        reason = self.not_evaluable()
        if reason:
            problems.append(f"it is {reason}")
        elif c.version != 3:
            problems.append(f"model API version {c.version}, expected 3")
        if c.observation_shapes != [(definition.observation_size,)]:
            problems.append(f"observation shapes {c.observation_shapes}, expected [({definition.observation_size},)]")
        if c.continuous != definition.action.continuous:
            problems.append(f"{c.continuous} continuous actions, expected {definition.action.continuous}")
        if c.branches != definition.action.branches:
            problems.append(f"discrete branches {list(c.branches)}, expected {list(definition.action.branches)}")
        return problems
