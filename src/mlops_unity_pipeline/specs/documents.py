"""Reading spec files: YAML/JSON with duplicate keys refused, and one readable error per problem."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import yaml

from ..errors import SpecError
from .asset import UnityAssetSpec
from .base import format_validation_error, parse_model  # noqa: F401 (part of this module's API)
from .jobs import TrainingJob


class _UniqueKeyLoader(yaml.SafeLoader):
    """YAML's spec forbids duplicate keys; PyYAML keeps the last one silently. Here it is an error."""


def _mapping_without_duplicates(loader: yaml.SafeLoader, node: yaml.MappingNode, deep: bool = False) -> Any:
    seen: set[Any] = set()
    for key_node, _ in node.value:
        key = loader.construct_object(key_node, deep=deep)
        if key in seen:
            raise yaml.constructor.ConstructorError(None, None, f"duplicate key {key!r}", key_node.start_mark)
        seen.add(key)
    return loader.construct_mapping(node, deep=deep)


_UniqueKeyLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _mapping_without_duplicates)


def _unique_json(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    keys = [k for k, _ in pairs]
    dup = next((k for k in keys if keys.count(k) > 1), None)
    if dup is not None:
        raise ValueError(f"duplicate key {dup!r}")
    return dict(pairs)


def load_document(path: str | Path) -> dict[str, Any]:
    """Read a YAML or JSON mapping, with errors that name the file."""
    p = Path(path)
    if not p.is_file():
        raise SpecError(f"file not found: {p}", hint="pass the path of a YAML or JSON file")
    try:
        text = p.read_text(encoding="utf-8")
        data = json.loads(text, object_pairs_hook=_unique_json) if p.suffix.lower() == ".json" else \
            yaml.load(text, Loader=_UniqueKeyLoader)  # noqa: S506 - a SafeLoader subclass
    except (yaml.YAMLError, json.JSONDecodeError, UnicodeDecodeError, ValueError) as exc:
        raise SpecError(f"could not parse {p}: {exc}") from None
    if not isinstance(data, dict):
        raise SpecError(f"{p} must contain a mapping at the top level, got {type(data).__name__}")
    return data


def load_job(path: str | Path) -> TrainingJob:
    """Load a `TrainingJob` from YAML/JSON (keys as in the Python API)."""
    return parse_model(TrainingJob, load_document(path), str(path))


def load_asset_spec(path: str | Path) -> UnityAssetSpec:
    data = load_document(path)
    if "asset_spec" in data:  # a job file is fine too
        data = data["asset_spec"]
    return parse_model(UnityAssetSpec, data, str(path))
