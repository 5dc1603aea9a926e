"""Hand-built ML-Agents v3 ONNX policies (linear, clipped) for tests that need models of known quality."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper


def linear_policy(path: Path, obs_size: int, weights=None, bias=(1.0, 0.0)) -> Path:
    """actions = clip(obs @ W + b, -1, 1), exported with the contract ML-Agents' exporter produces."""
    w = np.zeros((obs_size, 2), np.float32) if weights is None else np.asarray(weights, np.float32)
    inits = [
        numpy_helper.from_array(w, "W"), numpy_helper.from_array(np.asarray(bias, np.float32), "b"),
        numpy_helper.from_array(np.array([3.0], np.float32), "version_const"),
        numpy_helper.from_array(np.array([0.0], np.float32), "memory_const"),
        numpy_helper.from_array(np.array([2.0], np.float32), "shape_const"),
    ]
    nodes = [
        helper.make_node("MatMul", ["obs_0", "W"], ["mm"]),
        helper.make_node("Add", ["mm", "b"], ["lin"]),
        helper.make_node("Clip", ["lin"], ["deterministic_continuous_actions"], min=-1.0, max=1.0),
        helper.make_node("Identity", ["deterministic_continuous_actions"], ["continuous_actions"]),
        helper.make_node("Identity", ["version_const"], ["version_number"]),
        helper.make_node("Identity", ["memory_const"], ["memory_size"]),
        helper.make_node("Identity", ["shape_const"], ["continuous_action_output_shape"]),
    ]
    f = TensorProto.FLOAT
    graph = helper.make_graph(
        nodes, "policy", [helper.make_tensor_value_info("obs_0", f, ["batch", obs_size])],
        [helper.make_tensor_value_info("version_number", f, [1]), helper.make_tensor_value_info("memory_size", f, [1]),
         helper.make_tensor_value_info("continuous_actions", f, ["batch", 2]),
         helper.make_tensor_value_info("continuous_action_output_shape", f, [1]),
         helper.make_tensor_value_info("deterministic_continuous_actions", f, ["batch", 2])],
        inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 9)], producer_name="unity-mlops-tests")
    model.ir_version = 6
    onnx.checker.check_model(model)
    path.parent.mkdir(parents=True, exist_ok=True)
    onnx.save(model, str(path))
    return path


def contract_model(path: Path, inputs: dict[str, list], constants: dict[str, list[float]],
                   extra_outputs: dict[str, list] | None = None) -> Path:
    """A model with the given inputs (each passed through to an output of its own) and constant outputs: enough to
    stand for any ML-Agents export format (visual, recurrent, hybrid, v2, older) in classification tests."""
    f = TensorProto.FLOAT
    nodes, inits, outs = [], [], []
    for name, values in constants.items():
        inits.append(numpy_helper.from_array(np.asarray(values, np.float32), f"{name}_const"))
        nodes.append(helper.make_node("Identity", [f"{name}_const"], [name]))
        outs.append(helper.make_tensor_value_info(name, f, [len(values)]))
    for name, shape in (extra_outputs or {}).items():
        src = next(iter(inputs))
        nodes.append(helper.make_node("Identity", [src], [name]))
        outs.append(helper.make_tensor_value_info(name, f, shape))
    for name, shape in inputs.items():
        nodes.append(helper.make_node("Identity", [name], [f"{name}_echo"]))
        outs.append(helper.make_tensor_value_info(f"{name}_echo", f, shape))
    graph = helper.make_graph(nodes, "contract", [helper.make_tensor_value_info(n, f, s) for n, s in inputs.items()],
                              outs, inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 9)], producer_name="unity-mlops-tests")
    model.ir_version = 6
    onnx.checker.check_model(model)
    path.parent.mkdir(parents=True, exist_ok=True)
    onnx.save(model, str(path))
    return path


def make_policy(path: Path, obs_shapes: list[tuple[int, ...]], continuous: int = 0, branches: tuple[int, ...] = (),
                memory: int = 0, version: int = 3, seed: int = 0) -> Path:
    """A real, runnable ML-Agents-style policy of any export kind: several observations (vectors or NCHW images),
    continuous and/or discrete actions (v3: int64 actions; v2: log-probabilities side by side), and memory.

    Every observation is flattened and concatenated into x; continuous = clip(x @ Wc + m, -1, 1) where m is the
    first memory cell; each branch's action is the arg-max of x @ Wd (masked by `action_masks`); the memory grows
    by one per decision (recurrent_out = recurrent_in + 1), so a test can see it carried and reset."""
    rng = np.random.default_rng(seed)
    f, i64 = TensorProto.FLOAT, TensorProto.INT64
    width = sum(int(np.prod(s)) for s in obs_shapes)
    names = ([f"obs_{k}" for k in range(len(obs_shapes))] if version == 3 else
             (["vector_observation"] if any(len(s) == 1 for s in obs_shapes) else [])
             + [f"visual_observation_{k}" for k, s in enumerate(s for s in obs_shapes if len(s) == 3)])
    shapes = obs_shapes if version == 3 else (
        ([(sum(s[0] for s in obs_shapes if len(s) == 1),)] if any(len(s) == 1 for s in obs_shapes) else [])
        + [s for s in obs_shapes if len(s) == 3])
    inputs = [helper.make_tensor_value_info(n, f, ["batch", *s]) for n, s in zip(names, shapes, strict=True)]
    nodes, inits, outputs = [], [], []

    def const(name, value):
        inits.append(numpy_helper.from_array(np.asarray(value, np.float32), name))
        return name

    flat = []
    for n in names:
        nodes.append(helper.make_node("Flatten", [n], [f"{n}_flat"], axis=1))
        flat.append(f"{n}_flat")
    nodes.append(helper.make_node("Concat", flat, ["x"], axis=1))
    outputs += [helper.make_tensor_value_info("version_number", f, [1]),
                helper.make_tensor_value_info("memory_size", f, [1])]
    nodes += [helper.make_node("Identity", [const("v", [float(version)])], ["version_number"]),
              helper.make_node("Identity", [const("m", [float(memory)])], ["memory_size"])]
    if memory:
        inputs.append(helper.make_tensor_value_info("recurrent_in", f, ["batch", 1, memory]))
        nodes.append(helper.make_node("Add", ["recurrent_in", const("one", 1.0)], ["recurrent_out"]))
        nodes.append(helper.make_node("Flatten", ["recurrent_in"], ["mem_flat"], axis=1))
        nodes.append(helper.make_node("MatMul", ["mem_flat", const("pick", np.eye(memory, max(continuous, 1))[:, :max(
            continuous, 1)])], ["mem_term"]))
        outputs.append(helper.make_tensor_value_info("recurrent_out", f, ["batch", 1, memory]))
    if continuous:
        nodes.append(helper.make_node("MatMul", ["x", const("Wc", rng.normal(0, 0.1, (width, continuous)))], ["c0"]))
        last = "c0"
        if memory:
            nodes.append(helper.make_node("Add", ["c0", "mem_term"], ["c1"]))
            last = "c1"
        nodes.append(helper.make_node("Clip", [last], ["continuous_actions"], min=-1.0, max=1.0))
        nodes.append(helper.make_node("Identity", ["continuous_actions"], ["deterministic_continuous_actions"]))
        nodes.append(helper.make_node("Identity", [const("cshape", [float(continuous)])],
                                      ["continuous_action_output_shape"]))
        outputs += [helper.make_tensor_value_info("continuous_actions", f, ["batch", continuous]),
                    helper.make_tensor_value_info("continuous_action_output_shape", f, [1]),
                    helper.make_tensor_value_info("deterministic_continuous_actions", f, ["batch", continuous])]
    if branches:
        total = sum(branches)
        inputs.append(helper.make_tensor_value_info("action_masks", f, ["batch", total]))
        nodes.append(helper.make_node("MatMul", ["x", const("Wd", rng.normal(0, 1.0, (width, total)))], ["logits"]))
        # masked logits: logits + (mask - 1) * 1e9
        nodes.append(helper.make_node("Sub", ["action_masks", const("one_m", 1.0)], ["mask_off"]))
        nodes.append(helper.make_node("Mul", ["mask_off", const("big", 1e9)], ["mask_pen"]))
        nodes.append(helper.make_node("Add", ["logits", "mask_pen"], ["masked"]))
        if version == 2:
            nodes.append(helper.make_node("Identity", ["masked"], ["discrete_actions"]))
            nodes.append(helper.make_node("Identity", [const("dshape", [float(total)])],
                                          ["discrete_action_output_shape"]))
            outputs += [helper.make_tensor_value_info("discrete_actions", f, ["batch", total]),
                        helper.make_tensor_value_info("discrete_action_output_shape", f, [1])]
        else:
            cols, start = [], 0
            for k, b in enumerate(branches):
                nodes.append(helper.make_node("Slice", ["masked"], [f"br{k}"], starts=[start], ends=[start + b],
                                              axes=[1]))
                nodes.append(helper.make_node("ArgMax", [f"br{k}"], [f"arg{k}"], axis=1, keepdims=1))
                cols.append(f"arg{k}")
                start += b
            nodes.append(helper.make_node("Concat", cols, ["discrete_actions"], axis=1))
            nodes.append(helper.make_node("Identity", ["discrete_actions"], ["deterministic_discrete_actions"]))
            nodes.append(helper.make_node("Identity", [const("dshape", [[float(b) for b in branches]])],
                                          ["discrete_action_output_shape"]))
            outputs += [helper.make_tensor_value_info("discrete_actions", i64, ["batch", len(branches)]),
                        helper.make_tensor_value_info("discrete_action_output_shape", f, [1, len(branches)]),
                        helper.make_tensor_value_info("deterministic_discrete_actions", i64, ["batch", len(branches)])]
    graph = helper.make_graph(nodes, "policy", inputs, outputs, inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 9)], producer_name="unity-mlops-tests")
    model.ir_version = 6
    onnx.checker.check_model(model)
    path.parent.mkdir(parents=True, exist_ok=True)
    onnx.save(model, str(path))
    return path
