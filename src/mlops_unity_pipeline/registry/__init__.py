"""Model registry: immutable, numbered versions behind one interface (local store now, Vertex AI later).

`LocalModelRegistry` is imported when first used (PEP 562): it brings SQLAlchemy, which the registry's hot read
(`lookup.py`) does without."""

from __future__ import annotations

from typing import Any

from .base import (
    ModelRegistry,
    ModelVersion,
    RegistrationRequest,
    RegistryError,
    VersionNotFound,
    format_version,
    registry_asset_name,
)

__all__ = [
    "LocalModelRegistry",
    "ModelRegistry",
    "ModelVersion",
    "RegistrationRequest",
    "RegistryError",
    "VersionNotFound",
    "format_version",
    "registry_asset_name",
]


def __getattr__(name: str) -> Any:
    if name != "LocalModelRegistry":
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    from .local import LocalModelRegistry

    return LocalModelRegistry
