"""Model registry: immutable, numbered versions behind one interface (local store now, Vertex AI later)."""

from .base import (
    ModelRegistry,
    ModelVersion,
    RegistrationRequest,
    RegistryError,
    VersionNotFound,
    format_version,
    registry_asset_name,
)
from .local import LocalModelRegistry

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
