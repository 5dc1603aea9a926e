"""The build a version was trained and judged on, found again: by its recorded path and digest, or rebuilt.

Gates and the reproducibility retraining must play and train on the very executable the candidate knew, never on
a player built from the description. The registered version records the build (`BuildArtifact.record()`); this
finds it at its path if its digest still matches, else rebuilds it with `UNITY_BUILD_COMMAND` (when set) from the
version's own generated files, and says which of the two happened.
"""

from __future__ import annotations

from pathlib import Path

from .. import settings
from ..behavior.definition import BehaviorDefinition
from ..errors import StageError, UserError
from ..generate.base import GeneratedArtifacts
from .builders import BuildArtifact, EnvironmentBuilder, UnityCommandBuilder
from .headless import build_digest


class BuildUnavailable(UserError):
    """The recorded build is gone or changed, and it cannot be rebuilt here."""


def find_build(record: dict) -> BuildArtifact | None:
    """The recorded build, if it is still where it was with the same digest."""
    path, root = Path(record.get("path", "")), Path(record.get("root") or Path(record.get("path", "")).parent)
    if not (path.is_file() and root.is_dir()):
        return None
    if build_digest(root) != record.get("digest"):
        return None
    return BuildArtifact(path, record.get("kind", "unity"), record["digest"], has_simulator=False, root=root)


class ReuseBuilder(EnvironmentBuilder):
    """Builds nothing when the recorded build is intact; rebuilds it with `UNITY_BUILD_COMMAND` otherwise."""

    def __init__(self, record: dict) -> None:
        self.record = record
        self.outcome = ""  # "reused" | "rebuilt", after build()

    def build(self, definition: BehaviorDefinition, generated: GeneratedArtifacts, build_dir: Path,
              log_path: Path) -> BuildArtifact:
        found = find_build(self.record)
        if found is not None:
            self.outcome = "reused"
            log_path.parent.mkdir(parents=True, exist_ok=True)
            log_path.write_text(f"reused build {found.digest} at {found.env_path}\n")
            return found
        command = settings.unity_build().command
        where = f"{self.record.get('path')} (digest {str(self.record.get('digest'))[:12]})"
        if not command:
            raise BuildUnavailable(f"the build this version was judged on is gone or changed: {where}",
                                   hint="restore it there, or set UNITY_BUILD_COMMAND so it can be rebuilt")
        try:
            artifact = UnityCommandBuilder(command, settings.unity_build().timeout_s).build(
                definition, generated, build_dir, log_path)
        except StageError as exc:
            raise BuildUnavailable(f"rebuilding {where} failed: {exc.message}") from None
        self.outcome = "rebuilt"
        return artifact
