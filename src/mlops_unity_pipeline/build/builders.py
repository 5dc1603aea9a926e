"""Environment builders. `UNITY_BUILD_COMMAND` selects a real Unity build; otherwise the built-in headless
player (a Python simulator that speaks the ML-Agents protocol) is built for the behavior."""

from __future__ import annotations

import shlex
import shutil
import subprocess
from abc import ABC, abstractmethod
from dataclasses import dataclass
from pathlib import Path

from .. import settings
from ..behavior.definition import BehaviorDefinition
from ..errors import StageError
from ..generate.base import GeneratedArtifacts
from .headless import build_digest, build_headless_player


@dataclass
class BuildArtifact:
    env_path: Path          # what `mlagents-learn --env` gets
    kind: str               # "headless-player" | "unity"
    digest: str
    has_simulator: bool     # True when the behavior simulator can evaluate policies for this build
    root: Path | None = None  # the directory the digest covers (default: the executable's)

    def record(self) -> dict:
        """What a registered version keeps to find (or rebuild) the very build it was judged on."""
        return {"kind": self.kind, "path": str(self.env_path), "digest": self.digest,
                "root": str(self.root or self.env_path.parent)}


def log_tail(path: Path, lines: int = 40) -> str:
    try:
        return "\n".join(path.read_text(encoding="utf-8", errors="replace").splitlines()[-lines:])
    except OSError:
        return ""


class EnvironmentBuilder(ABC):
    @abstractmethod
    def build(
        self, definition: BehaviorDefinition, generated: GeneratedArtifacts, build_dir: Path, log_path: Path
    ) -> BuildArtifact: ...


class HeadlessPlayerBuilder(EnvironmentBuilder):
    def __init__(self, python: Path, agents_per_env: int) -> None:
        self.python = python
        self.agents = agents_per_env

    def build(
        self, definition: BehaviorDefinition, generated: GeneratedArtifacts, build_dir: Path, log_path: Path
    ) -> BuildArtifact:
        out = build_dir / definition.behavior_name
        try:
            exe = build_headless_player(definition, out, self.python, self.agents)
        except (OSError, ValueError) as exc:
            raise StageError("build", f"could not build the headless player: {exc}") from None
        log_path.parent.mkdir(parents=True, exist_ok=True)
        log_path.write_text(f"headless player for {definition.behavior_name} built at {exe}\n")
        return BuildArtifact(exe, "headless-player", build_digest(out), has_simulator=True, root=out)


class UnityCommandBuilder(EnvironmentBuilder):
    """Runs `UNITY_BUILD_COMMAND` (no shell) and checks that it produced the player.

    Appended arguments, read by the generated `BuildScript.PerformBuild`: ``-logFile <build log>
    --mlagents-build-output-path <build>/<Behavior> --mlagents-build-target StandaloneLinux64``. The same
    values are also in the environment as ``UNITY_MLOPS_BUILD_OUTPUT``, ``UNITY_MLOPS_GENERATED_DIR`` and
    ``UNITY_MLOPS_BEHAVIOR``.
    """

    def __init__(self, command: str, timeout_s: float = settings.DEFAULT_UNITY_BUILD_TIMEOUT_S,
                 project_path: Path | None = None, scene: str | None = None) -> None:
        self.command = command
        self.timeout_s = timeout_s
        self.project_path = project_path
        self.scene = scene

    def install_scripts(self, generated: GeneratedArtifacts) -> list[Path]:
        """Copy the generated C# into the project: Assets/UnityMLOps/Generated and .../Editor."""
        assert self.project_path is not None
        assets = self.project_path / "Assets"
        if not assets.is_dir():
            raise StageError("build", f"UNITY_PROJECT_PATH {self.project_path} is not a Unity project (no Assets/)")
        copied = []
        targets = [(generated.agent_source, assets / "UnityMLOps" / "Generated")]
        if generated.build_script is not None:
            targets.append((generated.build_script, assets / "UnityMLOps" / "Editor"))
        for src, dest_dir in targets:
            dest_dir.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dest_dir / src.name)
            copied.append(dest_dir / src.name)
        return copied

    def build(
        self, definition: BehaviorDefinition, generated: GeneratedArtifacts, build_dir: Path, log_path: Path
    ) -> BuildArtifact:
        try:
            argv = shlex.split(self.command)
        except ValueError as exc:
            raise StageError("build", f"UNITY_BUILD_COMMAND cannot be parsed: {exc}") from None
        if not argv:
            raise StageError("build", "UNITY_BUILD_COMMAND is empty")
        build_dir.mkdir(parents=True, exist_ok=True)
        if self.project_path is not None:
            self.install_scripts(generated)
        output = build_dir / definition.behavior_name
        if self.scene:
            argv += ["--mlagents-build-scene-path", self.scene]
        argv += ["-logFile", str(log_path.with_suffix(".unity.log")), "--mlagents-build-output-path", str(output),
                 "--mlagents-build-target", "StandaloneLinux64"]
        env = dict(settings.environ(), UNITY_MLOPS_BUILD_OUTPUT=str(output),
                   UNITY_MLOPS_GENERATED_DIR=str(generated.agent_source.parent),
                   UNITY_MLOPS_BEHAVIOR=definition.behavior_name)
        log_path.parent.mkdir(parents=True, exist_ok=True)
        with log_path.open("w", encoding="utf-8") as log:
            log.write(f"$ {shlex.join(argv)}\n")
            log.flush()
            try:
                proc = subprocess.run(argv, stdout=log, stderr=subprocess.STDOUT, env=env, timeout=self.timeout_s)
            except FileNotFoundError:
                raise StageError("build", f"UNITY_BUILD_COMMAND program not found: {argv[0]!r}") from None
            except subprocess.TimeoutExpired:
                raise StageError("build", f"the Unity build did not finish within {self.timeout_s:.0f} s",
                                 log_tail=log_tail(log_path)) from None
        tail = log_tail(log_path) + ("\n" + log_tail(log_path.with_suffix(".unity.log"))).rstrip()
        if proc.returncode != 0:
            raise StageError("build", f"the Unity build exited with code {proc.returncode}", log_tail=tail)
        player = next((p for p in (output, output.with_name(output.name + ".x86_64"),
                                   output / definition.behavior_name,
                                   output / f"{definition.behavior_name}.x86_64") if p.is_file()), None)
        if player is None:
            raise StageError("build", f"the Unity build exited 0 but no player was found at {output}[.x86_64]",
                             log_tail=tail)
        root = player.parent if player.parent != build_dir else build_dir
        return BuildArtifact(player, "unity", build_digest(root), has_simulator=False, root=root)


def unity_build_requested() -> bool:
    return settings.unity_build().requested


def select_builder(python: Path | None, agents_per_env: int) -> EnvironmentBuilder:
    """`UNITY_BUILD_COMMAND`, or `UNITY_EDITOR` + `UNITY_PROJECT_PATH`, selects a Unity build; else the player."""
    unity = settings.unity_build()
    command, editor, project, timeout, scene = unity.command, unity.editor, unity.project, unity.timeout_s, unity.scene
    if not command and editor:
        if not project:
            raise StageError("build", "UNITY_EDITOR is set but UNITY_PROJECT_PATH is not",
                             log_tail="set UNITY_PROJECT_PATH to the Unity project to build")
        command = shlex.join([editor, "-batchmode", "-nographics", "-quit", "-projectPath", project,
                              "-executeMethod", "BuildScript.PerformBuild"])
    if command:
        return UnityCommandBuilder(command, timeout, Path(project) if project else None, scene)
    if python is None:
        raise StageError("build", "the headless player needs the trainer environment")
    return HeadlessPlayerBuilder(python, agents_per_env)
