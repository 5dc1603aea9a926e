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
