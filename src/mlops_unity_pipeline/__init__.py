"""unity-mlops: from a plain description of a Unity ML-Agents agent to a trained, evaluated, registered model.

The public names are imported lazily, so `import mlops_unity_pipeline.behavior` (which the headless player does
inside the trainer environment) does not pull in pydantic or onnxruntime.
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

_EXPORTS = {
    "UnityAssetSpec": "specs",
    "RLTrainingConfig": "specs",
    "TrainingJob": "specs",
    "TrainingSchedule": "specs",
    "TrainingResult": "specs",
    "UnityMLOpsOrchestrator": "pipeline.orchestrator",
    "TrainingScheduler": "scheduler.scheduler",
    "ControlPlaneRuntime": "controlplane.runtime",
    "BehaviorDefinition": "behavior.definition",
    "build_behavior": "behavior.definition",
    "LocalModelRegistry": "registry.local",
    "UserError": "errors",
}

__all__ = sorted([*_EXPORTS, "__version__"])


def _behavior_plugins() -> None:
    from .plugins import install_behavior_plugins

    install_behavior_plugins()


def _register_providers() -> None:
    from .behavior.archetypes import PROVIDERS  # standard library only: cheap

    if _behavior_plugins not in PROVIDERS:
        PROVIDERS.append(_behavior_plugins)


_register_providers()


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'mlops_unity_pipeline' has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{module}", __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return __all__
