"""Vertex AI Model Registry backend (optional extra: `pip install 'unity-mlops[vertex]'`).

Every version is registered locally first (numbering, files, lineage, ledger stay the history of record), then:
artifacts are uploaded to GCS under `gs://<bucket>/unity-mlops/<asset>/<version>/`, and `Model.upload` creates the
asset's Vertex model (first version) or a new version of it (`parent_model`), with `is_default_version=False` so
that only the governance ledger moves what serves. The version string is both a version alias and a label (Vertex
assigns its own numeric version ids). Promotion and rollback move the `staging`/`production` aliases through
`MergeVersionAliases` (which moves an alias held by another version atomically). `sync` reports drift between the
local ledger and Vertex.

IAM for the runtime's service account (seed 000): `roles/aiplatform.user`, `roles/storage.objectAdmin` (or a
bucket-scoped role) and `roles/logging.logWriter`.
"""

from __future__ import annotations

import re
from typing import Any

from sqlalchemy import text

from .base import ModelRegistry, ModelVersion, RegistrationRequest, RegistryError, registry_asset_name
from .local import STORE, LocalModelRegistry

# Models are for Unity: clients (Inference Engine / Sentis) download the .onnx. Registered without a serving
# container, a version is a Vertex registry entry (a "referenced" model: versions, aliases, labels, the artifacts'
# gs:// URI in its description), not deployable to an endpoint. To serve on Vertex, set `serving_image` to an
# ONNX-capable container you host (e.g. NVIDIA Triton with its ONNX Runtime backend); the artifact URI is then
# passed to it as the model's `artifactUri`.
DEFAULT_SERVING_IMAGE: str | None = None


def _label(value: str) -> str:
    """Vertex labels: <= 63 chars of lower-case letters, digits, '_' and '-'."""
    return re.sub(r"[^a-z0-9_-]", "-", value.lower())[:63]


class VertexModelRegistry(ModelRegistry):
    def __init__(self, project: str, region: str, bucket: str, local: LocalModelRegistry, *,
                 api_endpoint: str | None = None, credentials: Any = None, storage_client: Any = None,
                 serving_image: str | None = DEFAULT_SERVING_IMAGE) -> None:
        try:
            from google.cloud import aiplatform, storage  # noqa: F401
        except ImportError:
            raise RegistryError(
                "vertex_project is set but google-cloud-aiplatform is not installed; "
                "install it with: pip install 'unity-mlops[vertex]'") from None
        self.project, self.region, self.bucket = project, region, bucket.removeprefix("gs://").rstrip("/")
        self.local = local
        self.api_endpoint = api_endpoint
        self.credentials = credentials
        self.serving_image = serving_image
        self._storage = storage_client
        self.root = local.root

    @property
    def ledger(self):
        """The ledger stays local (the history of record); `mirror_alias` makes Vertex follow it."""
        return self.local.ledger

    def mirror_alias(self, version: str, alias: str) -> None:
        self.set_alias(version, alias)

    # ------------------------------------------------------------------ SDK plumbing
    def _init(self) -> None:
        from google.cloud import aiplatform

        kwargs: dict[str, Any] = {"project": self.project, "location": self.region}
        if self.credentials is not None:
            kwargs["credentials"] = self.credentials
        if self.api_endpoint:
            kwargs.update(api_endpoint=self.api_endpoint, api_transport="rest")
        aiplatform.init(**kwargs)

    def _storage_client(self):
        if self._storage is None:
            from google.cloud import storage

            self._storage = storage.Client(project=self.project, credentials=self.credentials)
        return self._storage

    def _upload_artifacts(self, version: ModelVersion) -> str:
        prefix = f"unity-mlops/{version.asset_name}/{version.version}"
        bucket = self._storage_client().bucket(self.bucket)
        directory = version.model_path.parent
        for path in sorted(directory.iterdir()):
            if path.is_file():
                bucket.blob(f"{prefix}/{path.name}").upload_from_filename(str(path))
        return f"gs://{self.bucket}/{prefix}"

    def _parent(self, asset: str) -> str | None:
        row = None if self.local.db.is_empty() else self.local.db.one(
            "SELECT resource_name FROM vertex_models WHERE asset_name=:a", {"a": asset})
        return row[0] if row else None

    def vertex_version(self, version: str) -> tuple[str, str] | None:
        row = None if self.local.db.is_empty() else self.local.db.one(
            "SELECT resource_name, version_id FROM vertex_versions WHERE version=:v", {"v": version})
        return (row[0], row[1]) if row else None

    # ------------------------------------------------------------------ ModelRegistry
    def register(self, request: RegistrationRequest) -> ModelVersion:
        from google.api_core import exceptions as gexc
        from google.cloud import aiplatform

        existed = request.run_key is not None and self.local.find_run(request.run_key) is not None
        version = self.local.register(request)  # idempotent per run: a retried run gets its version back
        link = self.vertex_version(version.version)
        if link:  # this run already completed its remote registration
            version.uri = f"{link[0]}@{link[1]}"
            return version
        asset = registry_asset_name(request.asset_name)
        try:
            artifact_uri = self._upload_artifacts(version)
            self._init()
            parent = self._parent(asset)
            labels = {"unity_mlops_asset": _label(asset), "unity_mlops_job": _label(request.job_id),
                      "unity_mlops_version": _label(version.version), "unity_mlops_git_sha": _label(request.git_sha)}
            serving = {"artifact_uri": artifact_uri, "serving_container_image_uri": self.serving_image} \
                if self.serving_image else {}
            model = aiplatform.Model.upload(
                display_name=f"unity-{asset}", parent_model=parent, is_default_version=False,
                version_aliases=[version.version], version_description=f"{version.version}: artifacts {artifact_uri}",
                labels=labels, sync=True, **serving,
            )
        except (gexc.GoogleAPIError, OSError, ValueError, RuntimeError) as exc:
            if not existed:  # atomic across both sides: nothing is left registered on one side only
                self.local.discard_incomplete(version.version)
            raise RegistryError(f"the Vertex AI registration of {version.version} failed ({exc}); nothing was "
                                "registered: re-run the job to register it (its trained model is kept)") from None
        with self.local.db.write(STORE) as conn:
            conn.execute(text("INSERT INTO vertex_models (asset_name, resource_name) VALUES (:a, :r) "
                              "ON CONFLICT (asset_name) DO NOTHING"), {"a": asset, "r": model.resource_name})
            conn.execute(text("INSERT INTO vertex_versions (version, resource_name, version_id, artifact_uri) VALUES "
                              "(:v, :r, :id, :uri) ON CONFLICT (version) DO UPDATE SET resource_name=excluded."
                              "resource_name, version_id=excluded.version_id, artifact_uri=excluded.artifact_uri"),
                         {"v": version.version, "r": model.resource_name, "id": model.version_id, "uri": artifact_uri})
        version.uri = f"{model.resource_name}@{model.version_id}"
        return version

    def get(self, version: str) -> ModelVersion:
        v = self.local.get(version)
        link = self.vertex_version(version)
        if link:
            v.uri = f"{link[0]}@{link[1]}"
        return v

    def find_run(self, run_key: str) -> ModelVersion | None:
        """Only a run whose remote registration completed counts: otherwise its retry must finish it."""
        found = self.local.find_run(run_key)
        return self.get(found.version) if found and self.vertex_version(found.version) else None

    def list(self, asset_name: str | None = None) -> list[ModelVersion]:
        return [self.get(v.version) for v in self.local.list(asset_name)]

    # browsing: the local store of record answers in SQL (its pages' versions carry their Vertex URIs)
    def versions_page(self, limit: int, offset: int = 0, asset_name: str | None = None
                      ) -> tuple[list[ModelVersion], int]:
        page, total = self.local.versions_page(limit, offset, asset_name)
        return [self.get(v.version) for v in page], total

    def page(self, asset_name: str, limit: int, offset: int = 0) -> tuple[list[ModelVersion], int]:
        page, total = self.local.page(asset_name, limit, offset)
        return [self.get(v.version) for v in page], total

    def assets(self) -> list[tuple[str, int]]:
        return self.local.assets()

    def assets_page(self, limit: int | None, offset: int = 0) -> tuple[list[tuple[str, int]], int]:
        return self.local.assets_page(limit, offset)

    def has_asset(self, asset_name: str) -> bool:
        return self.local.has_asset(asset_name)

    def asset_of_id(self, asset_id: str) -> str | None:
        return self.local.asset_of_id(asset_id)

    def metric_series(self, asset_name: str, path: tuple[str, ...]) -> list[tuple[int, float | None]]:
        return self.local.metric_series(asset_name, path)

    # ------------------------------------------------------------------ aliases
    def set_alias(self, version: str, alias: str) -> None:
        """Point `alias` at `version` in Vertex (moving it off whichever version holds it)."""
        from google.cloud import aiplatform

        link = self.vertex_version(version)
        if link is None:
            raise RegistryError(f"{version} was not registered in Vertex AI")
        self._init()
        aiplatform.models.ModelRegistry(link[0]).add_version_aliases([alias], version=link[1])

    def remote_aliases(self, asset_name: str, aliases: tuple[str, ...] = ("staging", "production")) -> dict[str, str]:
        """{alias: our version string} as Vertex sees it."""
        from google.api_core import exceptions as gexc
        from google.cloud import aiplatform

        parent = self._parent(registry_asset_name(asset_name))
        if parent is None:
            return {}
        self._init()
        registry = aiplatform.models.ModelRegistry(parent)
        out = {}
        for alias in aliases:
            try:
                info = registry.get_version_info(alias)
            except gexc.NotFound:
                continue
            ours = [a for a in info.version_aliases if a.startswith("unity-")]
            out[alias] = ours[0] if ours else f"vertex-version-{info.version_id}"
        return out

    def sync_report(self, asset_name: str, local_aliases: dict[str, str]) -> dict[str, Any]:
        remote = self.remote_aliases(asset_name)
        drift = {a: {"local": local_aliases.get(a), "vertex": remote.get(a)}
                 for a in sorted(set(local_aliases) | set(remote)) if local_aliases.get(a) != remote.get(a)}
        return {"asset": registry_asset_name(asset_name), "local": local_aliases, "vertex": remote, "drift": drift}


def default_bucket(project: str) -> str:
    """The seed's example bucket name."""
    return f"{project}-mlops-unity-models"
