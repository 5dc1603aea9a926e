"""Load an exported ML-Agents policy with onnxruntime, check its contract and act with it.

Every policy ML-Agents exports runs here: model API v3 (inputs ``obs_0..obs_{n-1}`` [+ ``action_masks``]
[+ ``recurrent_in``]; outputs ``version_number``, ``memory_size`` and per action kind
``continuous_actions``/``continuous_action_output_shape``/``deterministic_continuous_actions`` and
``discrete_actions``/``discrete_action_output_shape``/``deterministic_discrete_actions`` [+ ``recurrent_out``]) and
API v2 (``vector_observation``, ``visual_observation_<k>``; discrete outputs are log-probabilities, so the
deterministic action is their arg-max per branch). Several observations, camera inputs (NCHW, or NHWC in old
exports: transposed to whatever the model declares), recurrent memory, several discrete branches with masks, and
hybrid actions are all supported. Only exports older than API v2 are refused, with the reason.
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


@dataclass(frozen=True)
class PolicySpec:
    """What a behaviour observes and does, as the environment declares it (ML-Agents' `BehaviorSpec`): the shape of
    each observation in sensor order, the continuous action count and the discrete branch sizes."""

    obs_shapes: tuple[tuple[int, ...], ...]
    continuous: int = 0
    branches: tuple[int, ...] = ()

    @classmethod
    def of(cls, definition: BehaviorDefinition) -> PolicySpec:
        return cls(tuple(tuple(s) for s in definition.observation_shapes()), definition.action.continuous,
                   definition.action.branches)

    @classmethod
    def from_dict(cls, d: dict) -> PolicySpec:
        return cls(tuple(tuple(int(x) for x in s) for s in d["obs"]), int(d.get("continuous", 0)),
                   tuple(int(b) for b in d.get("branches", ())))

    def to_dict(self) -> dict:
        return {"obs": [list(s) for s in self.obs_shapes], "continuous": self.continuous,
                "branches": list(self.branches)}

    @property
    def visual(self) -> bool:
        return any(len(s) == 3 for s in self.obs_shapes)

    def describe(self) -> str:
        acts = [f"{self.continuous} continuous"] if self.continuous else []
        acts += [f"discrete branches {list(self.branches)}"] if self.branches else []
        shapes = ["x".join(str(d) for d in s) for s in self.obs_shapes]
        seen = f"{shapes[0]} observations" if len(shapes) == 1 and len(self.obs_shapes[0]) == 1 else \
            f"observations {' + '.join(shapes)}"
        return f"{seen}, actions {' + '.join(acts) or 'none'}"


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
    kind: str = "v3"  # one of KINDS: what the model is (only "legacy" cannot be run)

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


@dataclass
class PolicyOutput:
    continuous: np.ndarray  # [B, continuous] float32 (width 0 when the policy has none)
    discrete: np.ndarray  # [B, branches] int64 (width 0 when the policy has none)
    memory: np.ndarray | None = None  # [B, memory_size] for recurrent policies


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


def _same_layout(shape: tuple[int, ...], declared: tuple[int, ...]) -> bool:
    return tuple(shape) == tuple(declared)


def fit_observation(obs: np.ndarray, declared: tuple[int, ...]) -> np.ndarray:
    """`obs` [B, *shape] in the layout the model declares: camera images come as CHW from current ML-Agents and
    as HWC from older writers and exports."""
    obs = np.asarray(obs, np.float32)
    shape = tuple(obs.shape[1:])
    if len(declared) == 3 and len(shape) == 3 and not _same_layout(shape, declared):
        if _same_layout((shape[2], shape[0], shape[1]), declared):
            return np.ascontiguousarray(obs.transpose(0, 3, 1, 2))  # HWC -> CHW
        if _same_layout((shape[1], shape[2], shape[0]), declared):
            return np.ascontiguousarray(obs.transpose(0, 2, 3, 1))  # CHW -> HWC
    return obs


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
        self._inputs = {i.name: (i.type, list(i.shape)) for i in self.session.get_inputs()}
        self.contract = self._read_contract()

    # ------------------------------------------------------------------ contract
    def _read_contract(self) -> ModelContract:
        """Classify the model from its declared inputs and outputs first; run it (on zeros of every declared
        input) only to read its constant outputs, so no model can make onnxruntime fail later."""
        inputs = self._inputs
        outputs = {o.name: (o.type, list(o.shape)) for o in self.session.get_outputs()}
        obs_names = sorted((n for n in inputs if n.startswith(_OBS_PREFIXES)),
                           key=lambda n: (not n.startswith("obs_"), n.startswith("visual"), _index(n)))
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
        if "discrete_action_output_shape" in values and "discrete_actions" in outputs:
            branches = tuple(int(x) for x in np.asarray(values["discrete_action_output_shape"]).reshape(-1))
        if kind_hint == "legacy" or version not in (2, 3):
            kind = "legacy"
        elif version == 2:
            kind = "v2"
        elif memory or "recurrent_in" in inputs:
            kind = "recurrent"
        elif any(len(s) == 3 for s in shapes):
            kind = "visual"
        elif cont and branches:
            kind = "hybrid"
        else:
            kind = "v3"
        return ModelContract(version, shapes, cont, branches, memory, inputs, outputs, kind=kind)

    @property
    def spec(self) -> PolicySpec:
        c = self.contract
        return PolicySpec(tuple(c.observation_shapes), c.continuous, c.branches)

    def not_evaluable(self) -> str | None:
        """Why no environment can run this model (None: it can)."""
        c = self.contract
        if c.kind == "legacy":
            return (f"an ML-Agents model of an API before v2 (version {c.version}; outputs {sorted(c.outputs)[:6]}): "
                    "re-export it with ML-Agents >= 2.0")
        if c.version == 2 and c.memory_size:
            return "an ML-Agents API v2 model with memory, which ML-Agents itself does not run: re-export it"
        return None

    def check_spec(self, spec: PolicySpec) -> list[str]:
        """Differences between the model and what an environment's behaviour declares (empty when it fits)."""
        c, problems = self.contract, []
        reason = self.not_evaluable()
        if reason:
            problems.append(f"it is {reason}")
        if c.version == 2:  # v2: the vector observations arrive concatenated
            vec = sum(s[0] for s in spec.obs_shapes if len(s) == 1)
            want = ([(vec,)] if vec else []) + [s for s in spec.obs_shapes if len(s) == 3]
            got = list(c.observation_shapes)
        else:
            want, got = list(spec.obs_shapes), list(c.observation_shapes)
        fits = len(got) == len(want) and all(_same_layout(g, w) or _layouts(g, w)
                                             for g, w in zip(got, want, strict=True))
        if not fits:
            problems.append(f"observation shapes {[list(s) for s in got]}, expected {[list(s) for s in want]}")
        if c.continuous != spec.continuous:
            problems.append(f"{c.continuous} continuous actions, expected {spec.continuous}")
        if c.version == 3 and c.branches != spec.branches:
            problems.append(f"discrete branches {list(c.branches)}, expected {list(spec.branches)}")
        if c.version == 2 and c.branches and sum(c.branches) != sum(spec.branches):
            problems.append(f"discrete outputs {sum(c.branches)} wide, expected branches {list(spec.branches)}")
        return problems

    def check_against(self, definition: BehaviorDefinition) -> list[str]:
        """Differences between the model and a built-in behaviour (empty when it fits)."""
        return self.check_spec(PolicySpec.of(definition))

    # ------------------------------------------------------------------ acting
    def _feed(self, obs: list[np.ndarray], mask: np.ndarray | None, memory: np.ndarray | None,
              spec: PolicySpec | None) -> dict[str, np.ndarray]:
        c = self.contract
        batch = len(obs[0])
        if c.version == 2:
            vectors = [o.reshape(batch, -1) for o in obs if np.asarray(o).ndim == 2]
            visuals = [o for o in obs if np.asarray(o).ndim == 4]
            ordered = ([np.concatenate(vectors, axis=1)] if vectors else []) + visuals
        else:
            ordered = list(obs)
        if len(ordered) != len(self._obs_names):
            raise ContractError(f"{self.path} takes {len(self._obs_names)} observations, got {len(ordered)}")
        feed = {n: fit_observation(o, s) for n, o, s in zip(self._obs_names, ordered, c.observation_shapes,
                                                              strict=True)}
        if "action_masks" in self._inputs:
            width = self._inputs["action_masks"][1][1]
            if not isinstance(width, int):
                width = sum(c.branches or (spec.branches if spec else ()))
            feed["action_masks"] = (np.ones((batch, width), np.float32) if mask is None
                                    else (~np.asarray(mask, bool)).astype(np.float32))
        if "recurrent_in" in self._inputs:
            size = int(self._inputs["recurrent_in"][1][2]) if isinstance(self._inputs["recurrent_in"][1][2], int) \
                else c.memory_size
            state = np.zeros((batch, size), np.float32) if memory is None else np.asarray(memory, np.float32)
            feed["recurrent_in"] = state.reshape(batch, 1, size)
        return feed

    def step(self, obs: list[np.ndarray] | np.ndarray, mask: np.ndarray | None = None,
             memory: np.ndarray | None = None, deterministic: bool = True,
             spec: PolicySpec | None = None) -> PolicyOutput:
        """Actions (and the next memory) for a batch. `obs`: one array per observation, [B, *shape]; `mask`: bool
        [B, sum(branches)], True where an action is masked (as ML-Agents' `DecisionSteps.action_mask`)."""
        reason = self.not_evaluable()
        if reason:
            raise ContractError(f"{self.path} cannot be evaluated: {reason}")
        obs_list = list(obs) if isinstance(obs, (list, tuple)) else [obs]
        batch = len(obs_list[0])
        c, outs = self.contract, self.contract.outputs
        names = []
        if c.continuous:
            det = "deterministic_continuous_actions"
            names.append(det if deterministic and det in outs else "continuous_actions")
        discrete_name = None
        if "discrete_actions" in outs and (c.branches or c.version == 2):
            det = "deterministic_discrete_actions"
            discrete_name = det if deterministic and det in outs else "discrete_actions"
            names.append(discrete_name)
        if "recurrent_out" in outs:
            names.append("recurrent_out")
        values = dict(zip(names, self.session.run(names, self._feed(obs_list, mask, memory, spec)), strict=True))
        cont = np.asarray(values[names[0]], np.float32).reshape(batch, -1) if c.continuous \
            else np.zeros((batch, 0), np.float32)
        if discrete_name is None:
            disc = np.zeros((batch, 0), np.int64)
        elif c.version == 2:  # log-probabilities per branch, side by side: the most likely action of each
            logits = np.asarray(values[discrete_name], np.float32).reshape(batch, -1)
            sizes = (spec.branches if spec and sum(spec.branches) == logits.shape[1] else None) or \
                c.branches or (logits.shape[1],)
            if mask is not None:
                logits = np.where(np.asarray(mask, bool), -np.inf, logits)
            edges = np.cumsum((0, *sizes))
            disc = np.stack([logits[:, a:b].argmax(axis=1) for a, b in zip(edges[:-1], edges[1:], strict=True)], axis=1)
        else:
            disc = np.asarray(values[discrete_name]).astype(np.int64).reshape(batch, -1)
        memory_out = None
        if "recurrent_out" in values:
            memory_out = np.asarray(values["recurrent_out"], np.float32).reshape(batch, -1)
        return PolicyOutput(cont, disc, memory_out)

    def act(self, obs: np.ndarray | list[np.ndarray], deterministic: bool = True) -> np.ndarray:
        """Actions of a policy with one kind of action: float [B, n] or int64 [B, branches]."""
        out = self.step(obs, deterministic=deterministic)
        if out.continuous.shape[1] and out.discrete.shape[1]:
            raise ContractError(f"{self.path} has hybrid actions: use step(), which returns both kinds")
        return out.continuous if out.continuous.shape[1] else out.discrete


def _index(name: str) -> int:
    digits = "".join(ch for ch in name if ch.isdigit())
    return int(digits) if digits else -1


def _layouts(got: tuple[int, ...], want: tuple[int, ...]) -> bool:
    """The same camera image in the other channel order (HWC vs CHW)."""
    if len(got) != 3 or len(want) != 3:
        return False
    return (got[2], got[0], got[1]) == tuple(want) or (got[1], got[2], got[0]) == tuple(want)
