"""Artifacts by URI: models, reports, checkpoints and TensorBoard events in object storage, so that any machine can
read what another one wrote (a job resumed on another node finds its checkpoint there)."""

from .store import ArtifactError, ArtifactStore, open_artifacts

__all__ = ["ArtifactError", "ArtifactStore", "open_artifacts"]
