"""ONNX export in ML-Agents' model contract (v3), the one Unity's inference engine loads.

Inputs `obs_0` (and `action_masks` for discrete actions); outputs `version_number`, `memory_size`, the stochastic
actions, their shape, and the deterministic actions; observation normalization inside the graph; opset 9, one
self-contained file, the operators ML-Agents' own exporter emits (Gemm, Sigmoid/Mul for Swish, Clip,
RandomNormalLike, Softmax/Multinomial/ArgMax).

The graph is written from the weights with `onnx.helper` rather than traced through torch's exporter: the network
is a fixed MLP, so tracing bought nothing but cost (25 ms of a 40 ms checkpoint, one every 20k steps in the
benchmarks) and process-global exporter state that two jobs in threads of one process had to serialize on.
`tests/test_fast.py` checks that the file computes what the rollout's actor computes.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from ..behavior.definition import BehaviorDefinition
from .network import ActorCritic

_F, _I64 = TensorProto.FLOAT, TensorProto.INT64


class _Graph:
    def __init__(self) -> None:
        self.nodes: list[onnx.NodeProto] = []
        self.inits: list[onnx.TensorProto] = []

    def const(self, name: str, value) -> str:
        self.inits.append(numpy_helper.from_array(np.asarray(value, np.float32), name))
        return name

    def op(self, op_type: str, inputs: list[str], output: str, **attrs) -> str:
        self.nodes.append(helper.make_node(op_type, inputs, [output], **attrs))
        return output


def _body(g: _Graph, net: ActorCritic) -> str:
    """Normalizer, Swish MLP and head of the actor: the policy output (mean, or logits), [batch, n_out]."""
    actor = net.numpy_actor()
    x = "obs_0"
    if actor.mean is not None:
        x = g.op("Sub", [x, g.const("normalizer.mean", actor.mean)], "normalizer.centred")
        x = g.op("Mul", [x, g.const("normalizer.inv_std", actor.inv_std)], "normalizer.scaled")
        x = g.op("Clip", [x], "normalizer.out", min=-5.0, max=5.0)
    last = len(actor.layers) - 1
    for i, (w, b) in enumerate(actor.layers):
        name = f"body.{i}" if i < last else "head"
        x = g.op("Gemm", [x, g.const(f"{name}.weight", w.T), g.const(f"{name}.bias", b)], f"{name}.linear",
                 transB=1)
        if i < last:
            sig = g.op("Sigmoid", [x], f"{name}.sigmoid")
            x = g.op("Mul", [x, sig], f"{name}.swish")
    return x


def export_onnx(net: ActorCritic, definition: BehaviorDefinition, path: Path) -> None:
    """Write the actor of `net` to `path` (one file, written in one call)."""
    a = definition.action
    g = _Graph()
    out = _body(g, net)
    inputs = [helper.make_tensor_value_info("obs_0", _F, ["batch", definition.observation_size])]
    g.op("Identity", [g.const("version_number.value", [3.0])], "version_number")
    g.op("Identity", [g.const("memory_size.value", [0.0])], "memory_size")
    if a.is_continuous:
        k = a.continuous
        std = np.exp(net.params["log_std"].numpy()).astype(np.float32)
        noise = g.op("RandomNormalLike", [out], "noise", dtype=_F)
        sample = g.op("Add", [out, g.op("Mul", [noise, g.const("std", std)], "scaled_noise")], "sample")
        three = g.const("three", 3.0)
        g.op("Div", [g.op("Clip", [sample], "sample.clipped", min=-3.0, max=3.0), three], "continuous_actions")
        g.op("Div", [g.op("Clip", [out], "mean.clipped", min=-3.0, max=3.0), three],
             "deterministic_continuous_actions")
        g.op("Identity", [g.const("shape.value", [float(k)])], "continuous_action_output_shape")
        outputs = [("continuous_actions", _F, ["batch", k]), ("continuous_action_output_shape", _F, [1]),
                   ("deterministic_continuous_actions", _F, ["batch", k])]
    else:
        inputs.append(helper.make_tensor_value_info("action_masks", _F, ["batch", sum(a.branches)]))
        one, big = g.const("one", 1.0), g.const("mask_penalty", 1e8)
        samples, argmaxes, start = [], [], 0
        for i, b in enumerate(a.branches):
            span = {"starts": [start], "ends": [start + b], "axes": [1]}
            logits = g.op("Slice", [out], f"branch{i}.logits", **span)
            mask = g.op("Slice", ["action_masks"], f"branch{i}.mask", **span)
            penalty = g.op("Mul", [g.op("Sub", [mask, one], f"branch{i}.masked"), big], f"branch{i}.penalty")
            probs = g.op("Softmax", [g.op("Add", [logits, penalty], f"branch{i}.masked_logits")], f"branch{i}.probs",
                         axis=1)
            log_probs = g.op("Log", [probs], f"branch{i}.log_probs")
            samples.append(g.op("Multinomial", [log_probs], f"branch{i}.sample", dtype=_I64, sample_size=1))
            argmaxes.append(g.op("ArgMax", [probs], f"branch{i}.argmax", axis=1, keepdims=1))
            start += b
        g.op("Concat", samples, "discrete_actions", axis=1)
        g.op("Concat", argmaxes, "deterministic_discrete_actions", axis=1)
        g.op("Identity", [g.const("shape.value", [[float(b) for b in a.branches]])], "discrete_action_output_shape")
        n = len(a.branches)
        outputs = [("discrete_actions", _I64, ["batch", n]), ("discrete_action_output_shape", _F, [1, n]),
                   ("deterministic_discrete_actions", _I64, ["batch", n])]
    outputs = [("version_number", _F, [1]), ("memory_size", _F, [1]), *outputs]
    graph = helper.make_graph(g.nodes, definition.behavior_name, inputs,
                              [helper.make_tensor_value_info(*o) for o in outputs], g.inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 9)], producer_name="unity-mlops")
    model.ir_version = 4  # as ML-Agents' exports (opset 9); what Unity's importers expect
    onnx.checker.check_model(model)
    Path(path).write_bytes(model.SerializeToString())
