"""Reading spec files: YAML/JSON with duplicate keys refused, and one readable error per problem."""

from __future__ import annotations

from pathlib import Path

from ..documents import load_document
from .asset import UnityAssetSpec
from .base import format_validation_error, parse_model  # noqa: F401 (part of this module's API)
from .jobs import TrainingJob


def load_job(path: str | Path) -> TrainingJob:
    """Load a `TrainingJob` from YAML/JSON (keys as in the Python API). A relative `rl_config.mlagents_config` is
    the job file's neighbour."""
    data = load_document(path)
    rl = data.get("rl_config")
    if isinstance(rl, dict) and isinstance(rl.get("mlagents_config"), str):
        own = Path(rl["mlagents_config"]).expanduser()
        data["rl_config"] = {**rl, "mlagents_config": str(own if own.is_absolute() else Path(path).parent / own)}
    return parse_model(TrainingJob, data, str(path))


def load_asset_spec(path: str | Path) -> UnityAssetSpec:
    data = load_document(path)
    if "asset_spec" in data:  # a job file is fine too
        data = data["asset_spec"]
    return parse_model(UnityAssetSpec, data, str(path))
