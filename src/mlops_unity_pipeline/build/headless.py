"""Build a headless player: a self-contained directory that `mlagents-learn --env` launches like a Unity build.

The build copies the `behavior`, `wire` and `in_trainer_env` sources next to a small launcher, so a build keeps
working (and keeps its exact behavior) when the installed package changes later; it is a real artifact, hashed and
kept.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import stat
import sys
from pathlib import Path

from ..behavior.definition import BehaviorDefinition

_PKG_ROOT = Path(__file__).resolve().parent.parent
_FORBIDDEN = (".app", ".exe", ".x86_64", ".x86")  # ML-Agents strips these anywhere in the --env path

_LAUNCHER = """#!/bin/sh
# Headless player for behavior {behavior}, built by unity-mlops.
# Started by mlagents-learn exactly like a Unity player:  {name} --mlagents-port N -logFile F [args]
HERE="$(cd "$(dirname "$0")" && pwd)"
exec {python} -s "$HERE/lib/run_player.py" --config "$HERE/player.json" "$@"
"""

_RUNNER = """import os, sys
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from mlops_unity_pipeline.in_trainer_env.player import main
sys.exit(main())
"""


def _quote(path: str) -> str:
    return "'" + path.replace("'", "'\\''") + "'"


def build_headless_player(
    definition: BehaviorDefinition | list[BehaviorDefinition], out_dir: str | Path, python: str | Path,
    agents: int = 16, camera_compression: str = "png",
) -> Path:
    """Write the player into `out_dir` and return the executable's path (pass it to `--env`). Several definitions
    make a build with several behaviours; the executable is named after the first."""
    definitions = definition if isinstance(definition, list) else [definition]
    definition = definitions[0]
    out = Path(out_dir).resolve()
    bad = [s for s in _FORBIDDEN if s in str(out)]
    if bad:
        raise ValueError(f"the build path {out} contains {bad[0]!r}, which ML-Agents strips from --env paths")
    tmp = out.with_name(out.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    lib = tmp / "lib" / "mlops_unity_pipeline"
    for sub in ("behavior", "in_trainer_env"):
        shutil.copytree(_PKG_ROOT / sub, lib / sub, ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copyfile(_PKG_ROOT / "wire.py", lib / "wire.py")
    (lib / "__init__.py").write_text('"""Runtime subset of mlops_unity_pipeline for the headless player."""\n')
    (tmp / "lib" / "run_player.py").write_text(_RUNNER)
    modules = _plugin_modules(definitions)
    for module in modules:  # a plugin's archetype or observation kind runs in the player too
        source = Path(sys.modules[module].__file__ or "")
        target = tmp / "lib" / Path(*module.split("."))
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(source, target.with_suffix(".py"))
    config = {"behavior": definition.to_dict(), "behaviors": [d.to_dict() for d in definitions], "agents": agents,
              "camera_compression": camera_compression, "plugins": modules}
    (tmp / "player.json").write_text(json.dumps(config, indent=2, sort_keys=True))
    exe = tmp / definition.behavior_name
    exe.write_text(_LAUNCHER.format(behavior=definition.behavior_name, name=exe.name, python=_quote(str(python))))
    exe.chmod(exe.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
    shutil.rmtree(out, ignore_errors=True)
    os.replace(tmp, out)
    return out / definition.behavior_name


def _plugin_modules(definitions: list[BehaviorDefinition]) -> list[str]:
    """The modules of the plugins (not the product's own) whose archetypes or observation kinds the build uses."""
    from .. import plugins
    from ..behavior.observations import KINDS

    used = [("archetypes", d.archetype) for d in definitions]
    used += [("observations", c.key) for d in definitions for c in d.observations if c.key in KINDS]
    modules = []
    for family, name in used:
        ep = plugins.entries(family).get(name)
        if ep is not None and not ep.module.startswith("mlops_unity_pipeline.") and ep.module not in modules:
            plugins.load(family, name)  # imported, so its file is known
            modules.append(ep.module)
    return modules


def build_digest(build_dir: str | Path) -> str:
    """sha256 over the build's files (names and contents), for lineage."""
    h = hashlib.sha256()
    root = Path(build_dir)
    for p in sorted(root.rglob("*")):
        if p.is_file() and "__pycache__" not in p.parts:
            h.update(str(p.relative_to(root)).encode() + b"\0" + p.read_bytes() + b"\0")
    return h.hexdigest()
