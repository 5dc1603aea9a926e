"""The registry interface. Stores hide behind it, as in MLflow's abstract model-registry store."""

from __future__ import annotations

import re
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .ledger import Ledger

VERSION_RE = re.compile(r"^unity-(?P<asset>[a-z0-9-]+)-(?P<date>\d{8})-(?P<sha>[0-9a-f]{7}|nogit)-v(?P<run>\d{3,})$")


class RegistryError(Exception):
    """The registry could not complete an operation (nothing was half-written)."""


class VersionNotFound(RegistryError, LookupError):
    pass


def registry_asset_name(name: str) -> str:
    """Lower-case, `_` -> `-`: the form that is also a legal Vertex AI version alias."""
    return name.lower().replace("_", "-")


def format_version(asset_name: str, date: datetime, git_sha: str, run_number: int) -> str:
    return f"unity-{registry_asset_name(asset_name)}-{date:%Y%m%d}-{git_sha}-v{run_number:03d}"


@dataclass
class RegistrationRequest:
    """Everything a model version is made of. Files are copied into the registry's own store."""

    asset_id: str
    asset_name: str
    behavior_name: str
    job_id: str
    model_path: Path
    files: dict[str, Path] = field(default_factory=dict)  # extra artifacts: name -> path
    metrics: dict[str, Any] = field(default_factory=dict)
    lineage: dict[str, Any] = field(default_factory=dict)
    git_sha: str = "nogit"
    # The run's identity (a scheduler run key, or `<job_id>#<attempt>`): registering the same run again returns
    # the version it already made instead of a new one.
    run_key: str | None = None


@dataclass
class ModelVersion:
    version: str
    asset_id: str
    asset_name: str
    behavior_name: str
    run_number: int
    job_id: str
    created_at: str
    model_path: Path
    model_sha256: str
    files: dict[str, str]
    metrics: dict[str, Any]
    lineage: dict[str, Any]
    uri: str
    run_key: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "version": self.version,
            "asset_id": self.asset_id,
            "asset_name": self.asset_name,
            "behavior_name": self.behavior_name,
            "run_number": self.run_number,
            "job_id": self.job_id,
            "created_at": self.created_at,
            "model_path": str(self.model_path),
            "model_sha256": self.model_sha256,
            "files": self.files,
            "metrics": self.metrics,
            "lineage": self.lineage,
            "uri": self.uri,
            "run_key": self.run_key,
        }


class ModelRegistry(ABC):
    """Immutable, numbered model versions per asset, their aliases and the ledger of alias moves.

    As in MLflow's abstract registry store, callers see only this; a backend is chosen by URI
    (`registry.uri.open_registry`). `root` is where the registry keeps its files (reports)."""

    root: Path

    @property
    @abstractmethod
    def ledger(self) -> Ledger:
        """Aliases, freezes, incidents and the append-only ledger, transactional with the versions."""

    def mirror_alias(self, version: str, alias: str) -> None:
        """Called after the ledger moved `alias` to `version`: a backend with remote aliases follows it."""
        return None

    @abstractmethod
    def register(self, request: RegistrationRequest) -> ModelVersion:
        """Idempotent per `request.run_key`: a run registers at most one version, however often it is retried."""

    @abstractmethod
    def find_run(self, run_key: str) -> ModelVersion | None:
        """The version a run registered, if it did."""

    @abstractmethod
    def get(self, version: str) -> ModelVersion: ...

    @abstractmethod
    def list(self, asset_name: str | None = None) -> list[ModelVersion]: ...
