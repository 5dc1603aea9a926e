"""ONNX export in ML-Agents' model contract (v3), the one Unity's inference engine loads.

Inputs `obs_0` (and `action_masks` for discrete actions); outputs `version_number`, `memory_size`, the stochastic
actions, their shape, and the deterministic actions; observation normalization inside the graph; opset 9 through
torch's legacy exporter, which writes one self-contained file.
"""

from __future__ import annotations

import threading
import warnings
from pathlib import Path

import torch

from ..behavior.definition import BehaviorDefinition


class _Contract(torch.nn.Module):
    """The actor (a module with `forward(obs)` and `log_std`) wrapped in ML-Agents' v3 outputs."""

    def __init__(self, actor: torch.nn.Module, definition: BehaviorDefinition) -> None:
        super().__init__()
        self.actor, self.action = actor, definition.action
        self.register_buffer("version_number", torch.tensor([3.0]))
        self.register_buffer("memory_size", torch.tensor([0.0]))
        if self.action.is_continuous:
            self.register_buffer("shape", torch.tensor([float(self.action.continuous)]))
        else:
            self.register_buffer("shape", torch.tensor([[float(b) for b in self.action.branches]]))

    def forward(self, obs, masks=None):
        out = self.actor(obs)
        if self.action.is_continuous:
            std = torch.exp(self.actor.log_std).expand_as(out)
            sample = out + torch.randn_like(out) * std
            stochastic = torch.clamp(sample, -3, 3) / 3
            deterministic = torch.clamp(out, -3, 3) / 3
            return self.version_number, self.memory_size, stochastic, self.shape, deterministic
        samples, argmaxes, start = [], [], 0
        for b in self.action.branches:
            logits = out[:, start:start + b] + (masks[:, start:start + b] - 1.0) * 1e8
            probs = torch.softmax(logits, dim=1)
            samples.append(torch.multinomial(probs, 1))
            argmaxes.append(torch.argmax(probs, dim=1, keepdim=True))
            start += b
        return (self.version_number, self.memory_size, torch.cat(samples, dim=1), self.shape,
                torch.cat(argmaxes, dim=1))


_EXPORT_LOCK = threading.Lock()


def export_onnx(actor: torch.nn.Module, definition: BehaviorDefinition, path: Path) -> None:
    a = definition.action
    module = _Contract(actor, definition).eval()
    obs = torch.zeros(1, definition.observation_size)
    if a.is_continuous:
        inputs, names = (obs,), ["obs_0"]
        outputs = ["version_number", "memory_size", "continuous_actions", "continuous_action_output_shape",
                   "deterministic_continuous_actions"]
    else:
        inputs, names = (obs, torch.ones(1, sum(a.branches))), ["obs_0", "action_masks"]
        outputs = ["version_number", "memory_size", "discrete_actions", "discrete_action_output_shape",
                   "deterministic_discrete_actions"]
    dynamic = {n: {0: "batch"} for n in names}
    dynamic.update({outputs[2]: {0: "batch"}, outputs[4]: {0: "batch"}})
    # torch's exporter keeps process-global state ("in ONNX export"): two jobs training in threads of one process
    # (the scheduler runs them so) must not export at once; warnings' filters are process-global too
    with _EXPORT_LOCK, torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # the legacy exporter is deliberate: opset 9, one file
        torch.onnx.export(module, inputs, str(path), opset_version=9, input_names=names, output_names=outputs,
                          dynamic_axes=dynamic, dynamo=False)
