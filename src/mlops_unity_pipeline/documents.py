"""Reading YAML and JSON documents that people write: duplicate keys refused, JSON's kinds of values only, and one
readable error that names the file. Spec files, scheduler configs, gate files and users' ML-Agents configs are all
read here."""

from __future__ import annotations

import json
import math
from datetime import date, time
from pathlib import Path
from typing import Any

import yaml

from .errors import SpecError

MAX_NODES = 100_000  # far beyond any job or trainer config; bounds what YAML aliases can expand to


def _kind(value: Any) -> str:
    if isinstance(value, (bytes, bytearray)):
        return "a !!binary value (bytes)"
    if isinstance(value, (set, frozenset)):
        return "a !!set"
    if isinstance(value, (date, time)):
        return f"a {type(value).__name__} (YAML reads an unquoted date or time as a timestamp)"
    return f"a {type(value).__name__} value"


def plain_data_problem(data: Any) -> str | None:
    """What makes `data` more than JSON's kinds of values (text, finite numbers, booleans, null, lists, mappings with
    text keys), or None. YAML tags produce other values (`!!binary` bytes, `!!set`, timestamps) and aliases can make
    a document contain itself or expand exponentially; each would fail far from the file (writing `job.json`,
    hashing the lineage), so spec files and free-form fields are checked where they are read."""
    seen = 0
    stack: list[tuple[Any, str, frozenset[int]]] = [(data, "", frozenset())]
    while stack:
        value, where, parents = stack.pop()
        seen += 1
        if seen > MAX_NODES:
            return f"more than {MAX_NODES:,} values (YAML aliases expanding?)"
        at = where or "(top level)"
        if value is None or isinstance(value, (bool, int, str)):
            continue
        if isinstance(value, float):
            if not math.isfinite(value):
                return f"{at}: {value} is not a finite number"
            continue
        if not isinstance(value, (dict, list, tuple)):
            return f"{at}: {_kind(value)} is not allowed here"
        if id(value) in parents:
            return f"{at}: a YAML alias refers to a value that contains it"
        inner = parents | {id(value)}
        if isinstance(value, dict):
            for key, item in value.items():
                if not isinstance(key, str):
                    return f"{at}: the key {key!r} must be text (quote it)"
                stack.append((item, f"{where}.{key}" if where else key, inner))
        else:
            stack.extend((item, f"{where}[{i}]", inner) for i, item in enumerate(value))
    return None


class _UniqueKeyLoader(yaml.SafeLoader):
    """YAML's spec forbids duplicate keys; PyYAML keeps the last one silently. Here it is an error."""


def _mapping_without_duplicates(loader: yaml.SafeLoader, node: yaml.MappingNode, deep: bool = False) -> Any:
    seen: set[Any] = set()
    for key_node, _ in node.value:
        if key_node.tag == "tag:yaml.org,2002:merge":  # `<<: *defaults`: its keys may be overridden, not duplicated
            continue
        if not isinstance(key_node, yaml.ScalarNode):  # `? [a]: b` has a list for a key: not hashable, not JSON
            raise yaml.constructor.ConstructorError(None, None, "a mapping key must be text, not a list or a mapping",
                                                    key_node.start_mark)
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
    except RecursionError:
        raise SpecError(f"could not parse {p}: nested too deeply") from None
    if not isinstance(data, dict):
        raise SpecError(f"{p} must contain a mapping at the top level, got {type(data).__name__}")
    problem = plain_data_problem(data)
    if problem:
        raise SpecError(f"{p}: {problem}", hint="write text (quote it), a finite number, a list or a mapping")
    return data
