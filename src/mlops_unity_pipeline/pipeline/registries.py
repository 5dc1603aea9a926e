"""Which registry a job registers in: chosen once from arguments, configuration and the environment.

Order: an explicit registry (object or URI) > `vertex:` settings (arguments) > `UNITY_MLOPS_REGISTRY` >
`GOOGLE_CLOUD_PROJECT` (the setup guide's Vertex AI variables) > `<workspace>/_registry`. A job may name its own
(`registry:` URI or `vertex:` settings); those are opened once and reused.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

from .. import settings
from ..artifacts import open_artifacts
from ..errors import UserError
from ..registry.base import ModelRegistry, RegistryError
from ..registry.uri import open_registry, vertex_registry
from ..specs import TrainingJob, VertexSettings

log = logging.getLogger("unity_mlops")


class Registries:
    def __init__(self, paths: settings.Paths, registry: ModelRegistry | str | None = None,
                 vertex: VertexSettings | None = None) -> None:
        default_root = paths.workspace / settings.REGISTRY_DIRNAME
        self.artifacts = open_artifacts(paths.artifacts)
        chosen = registry if isinstance(registry, ModelRegistry) else _open(paths.registry, default_root,
                                                                            paths.database, self.artifacts)
        self.local = chosen if chosen.local_history else _open(str(default_root), default_root, paths.database,
                                                               self.artifacts)
        self._open: dict[Any, ModelRegistry] = {}
        if vertex is None and registry is None:
            vertex = VertexSettings.from_environment()  # GOOGLE_CLOUD_PROJECT / VERTEX_REGION, as in the setup guide
            try:
                chosen = self.vertex(vertex) if vertex is not None else chosen
            except UserError as exc:  # e.g. Cloud Shell sets GOOGLE_CLOUD_PROJECT on a machine without the extra
                log.warning("GOOGLE_CLOUD_PROJECT is set, but %s; models stay in the local registry "
                            "(UNITY_MLOPS_VERTEX=off silences this)", exc)
                vertex = None
        self.vertex_settings = vertex
        self.default = self.vertex(vertex) if vertex is not None else chosen

    def vertex(self, v: VertexSettings) -> ModelRegistry:
        key = (v.project, v.region, v.bucket, v.serving_image)
        if key not in self._open:
            self._open[key] = _user_errors(vertex_registry, self.local, v.project, v.region, v.bucket,
                                           v.serving_image)
        return self._open[key]

    def for_job(self, job: TrainingJob) -> ModelRegistry:
        """The job's `registry:` URI or `vertex:` settings, where it has them, else the default."""
        if job.registry:
            if job.registry not in self._open:
                self._open[job.registry] = _open(job.registry, self.local.root)
            return self._open[job.registry]
        return self.vertex(job.vertex) if job.vertex is not None else self.default


def vertex_settings(vertex: VertexSettings | None, project: str | None, region: str | None,
                    bucket: str | None) -> VertexSettings | None:
    """The orchestrator's `vertex_project=`/`vertex_region=`/`vertex_bucket=` arguments (the setup guide's)."""
    if project:
        return VertexSettings(project=project, region=region or "us-central1", bucket=bucket)
    return vertex


def _user_errors(fn: Callable[..., ModelRegistry], *args: Any) -> ModelRegistry:
    try:
        return fn(*args)
    except RegistryError as exc:
        raise UserError(str(exc)) from None


def _open(uri: str, local_root: Path, database: str | None = None, artifacts: Any = None) -> ModelRegistry:
    try:
        return open_registry(uri, local_root=local_root, database=database, artifacts=artifacts)
    except RegistryError as exc:
        raise UserError(str(exc)) from None
