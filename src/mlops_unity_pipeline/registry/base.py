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

# The training curves a version keeps, named so that `tensorboard --logdir runs` does not list every registered
# version as another run beside its job (TensorBoard reads any file whose name contains "tfevents").
TRAINING_EVENTS = "training-events.pb"
VERSION_RE = re.compile(r"^unity-(?P<asset>[a-z0-9-]+)-(?P<date>\d{8})-(?P<sha>[0-9a-f]{7}|nogit)-v(?P<run>\d{3,})$")


class RegistryError(Exception):
    """The registry could not complete an operation (nothing was half-written)."""


class VersionNotFound(RegistryError, LookupError):
    pass


def registry_asset_name(name: str) -> str:
    """Lower-case, `_` -> `-`: the form that is also a legal Vertex AI version alias."""
    return name.lower().replace("_", "-")


def split_ref(ref: str) -> tuple[str, str] | None:
    """`ASSET@ALIAS` (or `ASSET:ALIAS`) as (asset, alias); None for a version's full name."""
    sep = "@" if "@" in ref else (":" if ":" in ref and not ref.startswith("unity-") else None)
    if sep is None:
        return None
    asset, alias = ref.split(sep, 1)
    return asset, alias


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
    # a store of record on this side (files, SQL) that a remote registry (Vertex AI) can be layered on
    local_history: bool = False

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

    def register_many(self, requests: list[RegistrationRequest]) -> list[ModelVersion]:
        """The versions of one run's behaviours. Stores with transactions register them together (all or none);
        this default registers them in turn, each idempotent by its run key."""
        return [self.register(r) for r in requests]

    @abstractmethod
    def find_run(self, run_key: str) -> ModelVersion | None:
        """The version a run registered, if it did."""

    @abstractmethod
    def get(self, version: str) -> ModelVersion: ...

    @abstractmethod
    def list(self, asset_name: str | None = None) -> list[ModelVersion]: ...

    # ------------------------------------------------------------------ browsing (defaults; stores do it in SQL)
    def assets(self) -> list[tuple[str, int]]:
        """(asset name, number of versions), by name."""
        counts: dict[str, int] = {}
        for v in self.list():
            counts[v.asset_name] = counts.get(v.asset_name, 0) + 1
        return sorted(counts.items())

    def assets_page(self, limit: int | None, offset: int = 0) -> tuple[list[tuple[str, int]], int]:
        """One page of `assets()` (all of them with `limit` None), and how many assets there are."""
        assets = self.assets()
        return (assets[offset:] if limit is None else assets[offset:offset + limit]), len(assets)

    def page(self, asset_name: str, limit: int, offset: int = 0) -> tuple[list[ModelVersion], int]:
        """One page of an asset's versions, newest first, and how many there are."""
        versions = self.list(asset_name)[::-1]
        return versions[offset:offset + limit], len(versions)

    def metric_series(self, asset_name: str, path: tuple[str, ...]) -> list[tuple[int, float | None]]:
        """(run number, the metric at `path` in each version's metrics) across the asset's version lineage."""
        out = []
        for v in self.list(asset_name):
            node: Any = v.metrics
            for key in path:
                node = node.get(key) if isinstance(node, dict) else None
            out.append((v.run_number, float(node) if isinstance(node, int | float) else None))
        return out

    def versions_page(self, limit: int, offset: int = 0, asset_name: str | None = None
                      ) -> tuple[list[ModelVersion], int]:
        """One page of versions (all assets by name then run number, or one asset's), and how many there are."""
        versions = self.list(asset_name)
        return versions[offset:offset + limit], len(versions)

    def has_asset(self, asset_name: str) -> bool:
        return asset_name in {n for n, _ in self.assets()}

    def asset_of_id(self, asset_id: str) -> str | None:
        """The registry's name of the asset whose versions carry this `asset_id`, if any."""
        return next((v.asset_name for v in self.list() if v.asset_id == asset_id), None)

    def asset_name_for(self, name_or_id: str) -> str:
        """The registry's name of an asset given as its name (any case) or as its `asset_id`."""
        wanted = registry_asset_name(name_or_id)
        if self.has_asset(wanted):
            return wanted
        return self.asset_of_id(name_or_id) or wanted

    def resolve(self, ref: str) -> ModelVersion:
        """A version string, or `ASSET@ALIAS` (also `ASSET:ALIAS`; the asset by name or `asset_id`)."""
        parts = split_ref(ref)
        if parts is None:
            return self.get(ref)
        asset, alias = parts
        name = self.asset_name_for(asset)
        held = self.ledger.aliases(name)
        if alias not in held:
            known = ", ".join(f"{a}={v}" for a, v in sorted(held.items())) or "none"
            raise VersionNotFound(f"{ref!r}: asset {name!r} has no {alias!r} alias (aliases: {known}) in the "
                                  f"registry at {self.root}")
        return self.get(held[alias])
