"""Policies as environments drive them: a batch of agents at a time, each row an agent's current episode.

`act` gets the observations of the agents that must decide now, their action masks and a key per row naming the
agent's episode; `end` says which episodes are over. The key is what carries recurrent memory from one decision to
the next (and forgets it when the episode ends, as ML-Agents resets an agent's memory with its episode).
"""

from __future__ import annotations

from typing import Protocol

import numpy as np

from .onnx_policy import OnnxPolicy, PolicyOutput, PolicySpec


class Policy(Protocol):
    def act(self, obs: list[np.ndarray], mask: np.ndarray | None, keys: np.ndarray) -> PolicyOutput: ...

    def end(self, keys: np.ndarray) -> None: ...


class ModelPolicy:
    """An ONNX policy, deterministic (the action ML-Agents' inference takes), with memory per episode."""

    name = "onnx"

    def __init__(self, model: OnnxPolicy, spec: PolicySpec | None = None) -> None:
        self.model, self.spec = model, spec
        self.memory: dict[int, np.ndarray] = {}
        self.size = model.contract.memory_size

    def act(self, obs: list[np.ndarray], mask: np.ndarray | None, keys: np.ndarray) -> PolicyOutput:
        state = None
        if self.size:
            zeros = np.zeros(self.size, np.float32)
            state = np.stack([self.memory.get(int(k), zeros) for k in keys]) if len(keys) else None
        out = self.model.step(obs, mask, state, deterministic=True, spec=self.spec)
        if out.memory is not None:
            for k, m in zip(keys, out.memory, strict=True):
                self.memory[int(k)] = m
        return out

    def end(self, keys: np.ndarray) -> None:
        for k in keys:
            self.memory.pop(int(k), None)


class RandomPolicy:
    """Uniform actions (continuous in [-1, 1], each discrete branch among its unmasked actions): the baseline
    every evaluation reports beside the model."""

    name = "random"

    def __init__(self, spec: PolicySpec, seed: int = 0) -> None:
        self.spec = spec
        self.rng = np.random.default_rng(seed)

    def act(self, obs: list[np.ndarray], mask: np.ndarray | None, keys: np.ndarray) -> PolicyOutput:
        n = len(keys)
        cont = self.rng.uniform(-1.0, 1.0, size=(n, self.spec.continuous)).astype(np.float32)
        columns, start = [], 0
        for size in self.spec.branches:
            if mask is None:
                columns.append(self.rng.integers(0, size, size=n))
            else:
                allowed = ~np.asarray(mask[:, start:start + size], bool)
                allowed[allowed.sum(axis=1) == 0] = True  # everything masked: Unity takes action 0 anyway
                scores = self.rng.random((n, size)) * allowed
                columns.append(scores.argmax(axis=1))
            start += size
        disc = np.stack(columns, axis=1).astype(np.int64) if columns else np.zeros((n, 0), np.int64)
        return PolicyOutput(cont, disc)

    def end(self, keys: np.ndarray) -> None:
        pass
