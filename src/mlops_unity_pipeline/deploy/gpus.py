"""Pods that train on GPUs, in every mode: the device plugin's resource, and placement on the GPU nodes."""

from __future__ import annotations

from typing import Any

from ..scheduler.config import SchedulerConfig


def give_gpus(cfg: SchedulerConfig, pod: dict[str, Any], gpus: int) -> dict[str, Any]:
    """A pod that trains on `gpus` GPUs: the device plugin's resource on its container, and the placement on GPU
    nodes the config names (nodeSelector, tolerations of their taints, the NVIDIA runtime class)."""
    if not gpus:
        return pod
    k = cfg.kubernetes
    for container in pod["containers"]:
        for part in ("requests", "limits"):
            container["resources"][part][k.gpu_resource] = gpus
    if k.gpu_node_selector:
        pod["nodeSelector"] = dict(k.gpu_node_selector)
    if k.gpu_tolerations:
        pod["tolerations"] = [t.manifest() for t in k.gpu_tolerations]
    if k.gpu_runtime_class:
        pod["runtimeClassName"] = k.gpu_runtime_class
    return pod
