"""Plugins: one mechanism for every extension family, Python entry points.

Each family is an entry-point group; the product's own implementations are registered in its `pyproject.toml`
exactly as a third party registers theirs in its own package, so `unity-mlops plugins` lists both and nothing is
special-cased. A configuration names an implementation (`trainer: fast`, `registry: vertex://...`, `executor:
{kind: ray}`); `load(family, name)` finds its entry point, imports it and checks that it has the family's shape,
so a broken plugin is one clear error naming its package, not a traceback an hour later (APScheduler 3's plugin
loader works the same way).

    [project.entry-points."unity_mlops.trainers"]
    my-trainer = "my_package.trainer:MyTrainer"

The behaviour code shared with the trainer environment (`behavior/`) registers its built-ins directly as well,
because the product is not installed there; it consults the entry points only where they exist.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass
from importlib.metadata import EntryPoint, entry_points
from typing import Any

from .errors import UserError


class PluginError(UserError):
    """A plugin that cannot be found, imported or used."""


def _has(*names: str) -> Callable[[Any], str | None]:
    def check(obj: Any) -> str | None:
        missing = [n for n in names if not hasattr(obj, n)]
        return f"has no {', '.join(missing)}" if missing else None
    return check


def _callable(obj: Any) -> str | None:
    return None if callable(obj) else f"is a {type(obj).__name__}, not something to call"


def _instance_of(module: str, cls: str) -> Callable[[Any], str | None]:
    def check(obj: Any) -> str | None:
        import importlib

        expected = getattr(importlib.import_module(module), cls)
        return None if isinstance(obj, expected) else f"is a {type(obj).__name__}, not a {cls}"
    return check


@dataclass(frozen=True)
class Family:
    """An extension family: its entry-point group, what a configuration calls the name, what an entry must be."""

    group: str
    chosen_by: str
    shape: str
    check: Callable[[Any], str | None]


FAMILIES: dict[str, Family] = {
    "trainers": Family("unity_mlops.trainers", "rl_config.trainer",
                       "a class built with the trainer environment's path, with name, needs_player, "
                       "checker_python() and train(request, callback)",
                       _has("name", "needs_player", "checker_python", "train")),
    "registries": Family("unity_mlops.registries", "the scheme of registry: URIs",
                         "a function (uri, local_root, database, artifacts) -> ModelRegistry", _callable),
    "artifact_stores": Family("unity_mlops.artifact_stores", "the scheme of artifacts: URIs",
                              "a class built with the URI, with uri, upload, download, sizes, url",
                              _has("upload", "download", "sizes", "url")),
    "executors": Family("unity_mlops.executors", "executor.kind",
                        "a function (executor config, orchestrator) -> Executor (async run(job, run_key), close())",
                        _callable),
    "event_logs": Family("unity_mlops.event_logs", "the scheme of the control-plane log's location",
                         "a class built with the path or URL, with append, read and verify",
                         _has("append", "verify")),
    "archetypes": Family("unity_mlops.archetypes", "archetype: (or chosen from the description)",
                         "an Archetype (behavior/archetypes.py)",
                         _instance_of("mlops_unity_pipeline.behavior.archetypes", "Archetype")),
    "observations": Family("unity_mlops.observations", "observation_space keys",
                           "an ObservationKind (behavior/observations.py): its sizes, the simulator's function and "
                           "the C# that collects it",
                           _instance_of("mlops_unity_pipeline.behavior.observations", "ObservationKind")),
    "listeners": Family("unity_mlops.listeners", "(every one is subscribed)",
                        "a callable taking each lifecycle event", _callable),
    "actions": Family("unity_mlops.actions", "its id: a command (`unity-mlops GROUP NAME`), a dashboard button, "
                                             "an MCP tool where the control-plane bundle lists it",
                      "an Action (app/actions.py): its inputs' JSON Schema, what it does, where it appears",
                      _instance_of("mlops_unity_pipeline.app.actions", "Action")),
}


def _family(family: str) -> Family:
    try:
        return FAMILIES[family]
    except KeyError:
        raise PluginError(f"no plugin family {family!r}", hint=f"one of {', '.join(FAMILIES)}") from None


@functools.cache
def entries(family: str) -> dict[str, EntryPoint]:
    """The family's entry points by name (lower case). Cached; `refresh()` after installing a package."""
    return {ep.name.lower(): ep for ep in entry_points(group=_family(family).group)}


def refresh() -> None:
    entries.cache_clear()
    _loaded.cache_clear()


def names(family: str) -> list[str]:
    return sorted(entries(family))


@functools.cache
def _loaded(family: str, name: str) -> Any:
    fam, ep = _family(family), entries(family).get(name)
    if ep is None:
        raise PluginError(f"no {family[:-1].replace('_', ' ')} named {name!r} ({fam.chosen_by})",
                          hint=f"installed: {', '.join(names(family)) or 'none'}; a package adds one with an entry "
                               f"point in the group {fam.group!r}")
    where = f"{ep.value} (from {ep.dist.name if ep.dist else 'an unknown package'})"
    try:
        obj = ep.load()
    except Exception as exc:  # a plugin's import error is its own: name it, and the package
        raise PluginError(f"the {family[:-1].replace('_', ' ')} {name!r} at {where} does not load: "
                          f"{type(exc).__name__}: {exc}") from None
    problem = fam.check(obj)
    if problem:
        raise PluginError(f"the {family[:-1].replace('_', ' ')} {name!r} at {where} {problem}; it must be "
                          f"{fam.shape}")
    return obj


def load(family: str, name: str) -> Any:
    """The implementation `name` of `family`, imported and checked."""
    return _loaded(family, name.lower())


def load_all(family: str) -> dict[str, Any]:
    return {name: load(family, name) for name in names(family)}


def describe() -> list[dict[str, Any]]:
    """Every installed plugin, for `unity-mlops plugins`: family, name, object, package, and whether it loads."""
    rows = []
    for family in FAMILIES:
        for name, ep in sorted(entries(family).items()):
            try:
                load(family, name)
                status = "ok"
            except PluginError as exc:
                status = exc.message
            rows.append({"family": family, "name": name, "object": ep.value,
                         "package": ep.dist.name if ep.dist else None, "status": status})
    return rows


def install_behavior_plugins() -> None:
    """The archetypes and observation kinds of installed packages, into the behaviour registries (the product's
    own are registered there already, and again here as the same objects)."""
    from .behavior.archetypes import ARCHETYPES, register_archetype
    from .behavior.observations import KINDS, register_observation

    for kind in load_all("observations").values():
        if KINDS.get(kind.key) is not kind:
            register_observation(kind)
    for archetype in load_all("archetypes").values():
        if ARCHETYPES.get(archetype.name) is not archetype:
            register_archetype(archetype)
