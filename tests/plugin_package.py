"""A third party's package, installed the way pip installs one: its modules and a `*.dist-info` directory with
`entry_points.txt` in a directory on the path. `importlib.metadata` (and so the product's plugin loader) finds its
entry points exactly as it finds an installed wheel's; subprocesses see it through PYTHONPATH."""

from __future__ import annotations

import importlib
import os
import sys
import textwrap
from pathlib import Path


class PluginPackage:
    def __init__(self, root: Path, name: str, modules: dict[str, str], entry_points: dict[str, dict[str, str]]):
        self.root, self.name, self.modules, self.entry_points = root, name, modules, entry_points

    def install(self) -> PluginPackage:
        from mlops_unity_pipeline import plugins

        self.root.mkdir(parents=True, exist_ok=True)
        for module, source in self.modules.items():
            path = self.root / Path(*module.split(".")).with_suffix(".py")
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(textwrap.dedent(source))
        info = self.root / f"{self.name.replace('-', '_')}-1.0.dist-info"
        info.mkdir(exist_ok=True)
        (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {self.name}\nVersion: 1.0\n")
        (info / "entry_points.txt").write_text("".join(
            f"[{group}]\n" + "".join(f"{k} = {v}\n" for k, v in items.items()) + "\n"
            for group, items in self.entry_points.items()))
        sys.path.insert(0, str(self.root))
        importlib.invalidate_caches()
        plugins.refresh()
        _forget_behaviour_plugins()
        return self

    def uninstall(self) -> None:
        from mlops_unity_pipeline import plugins

        if str(self.root) in sys.path:
            sys.path.remove(str(self.root))
        for module in self.modules:
            sys.modules.pop(module, None)
        importlib.invalidate_caches()
        plugins.refresh()
        _forget_behaviour_plugins()

    def env(self) -> dict[str, str]:
        """The environment of a subprocess that has this package installed too."""
        return {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(self.root),
                                                                         os.environ.get("PYTHONPATH")]))}


def _forget_behaviour_plugins() -> None:
    """Archetypes and observation kinds are registered once per process: start over (the built-ins stay)."""
    from mlops_unity_pipeline.behavior import archetypes, observations

    builtin = {"reach_target", "navigation", "patrol", "obstacle_course", "duel", "pads", "corridor"}
    for name in [n for n in archetypes.ARCHETYPES if n not in builtin]:
        archetypes.ARCHETYPES.pop(name)
    for key in [k for k in observations.KINDS if k not in {"raycast", "velocity", "target", "position",
                                                            "waypoint_progress"}]:
        observations.KINDS.pop(key)
    archetypes._provided.clear()
