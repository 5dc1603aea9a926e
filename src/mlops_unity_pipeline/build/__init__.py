"""Stage 2, build: a headless environment the trainer can launch (a Unity build, or the headless player)."""

from .builders import (
    BuildArtifact,
    EnvironmentBuilder,
    HeadlessPlayerBuilder,
    UnityCommandBuilder,
    select_builder,
)

__all__ = ["BuildArtifact", "EnvironmentBuilder", "HeadlessPlayerBuilder", "UnityCommandBuilder", "select_builder"]
