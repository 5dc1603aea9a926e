"""Registries chosen by URI, as MLflow chooses its stores: one string in a config, the backend behind it.

    runs/_registry  or  file:///srv/registry       the local store (SQLite + content-addressed files)
    sqlite:///srv/registry/registry.db             the same, named by its database file
    postgresql://user@host/db                      the local store's index in PostgreSQL, its files local
    vertex://PROJECT/REGION?bucket=gs://B          Vertex AI Model Registry, over the local store

A backend is a plugin of the `unity_mlops.registries` family (`plugins.py`), named by its URI scheme: a function
`(uri, local_root, database, artifacts) -> ModelRegistry`. The product's own are registered the same way.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import parse_qs, unquote, urlsplit

from .. import plugins, settings
from .base import ModelRegistry, RegistryError

if TYPE_CHECKING:
    from ..artifacts import ArtifactStore
    from .local import LocalModelRegistry


def backends() -> list[str]:
    return plugins.names("registries")


def open_registry(uri: str | Path, *, local_root: str | Path | None = None, database: str | None = None,
                  artifacts: ArtifactStore | None = None) -> ModelRegistry:
    """The registry `uri` names. A plain path is a local store. `local_root` is where layered backends (Vertex AI)
    keep their local history of record (default: the workspace's `_registry`). With a shared `database`, a local
    store keeps its index there (its directory then holds only artifacts)."""
    text, scheme = str(uri), scheme_of(uri)
    root = Path(local_root) if local_root else settings.Paths.resolve().workspace / settings.REGISTRY_DIRNAME
    if scheme not in backends():
        raise RegistryError(f"no registry backend for {scheme}: URIs (installed: {', '.join(backends())}); "
                            "a plain path is a local registry")
    registry = plugins.load("registries", scheme)(text, root, database, artifacts)
    if not isinstance(registry, ModelRegistry):
        raise RegistryError(f"the registry backend {scheme!r} made a {type(registry).__name__}, not a ModelRegistry")
    return registry


def scheme_of(uri: str | Path) -> str:
    """The backend's name in a registry URI; a plain path is `file`."""
    text = str(uri)
    return urlsplit(text).scheme.lower() if "://" in text or text.startswith(("file:", "sqlite:")) else "file"


def local_store(uri: str, local_root: Path, database: str | None) -> tuple[Path, str | None]:
    """Where a local store (the `file`, `sqlite` and `postgresql` backends) keeps its files and its index: the
    directory, and the shared database (None: `registry.db` in the directory)."""
    if scheme_of(uri) in ("file", "sqlite"):
        path = Path(unquote(urlsplit(uri).path)) if "://" in uri or uri.startswith(("file:", "sqlite:")) else Path(uri)
        return (path.parent if path.suffix == ".db" else path), database
    return Path(local_root), uri  # postgresql://: the index in that database, the files in the workspace


def local_backend(uri: str, local_root: Path, database: str | None, artifacts: ArtifactStore | None
                  ) -> ModelRegistry:
    """A directory, `file://DIR` or `sqlite:///DIR/registry.db`; the index in `database` when there is one."""
    from .local import LocalModelRegistry

    return LocalModelRegistry(*local_store(uri, local_root, database), artifacts)


def database_backend(uri: str, local_root: Path, database: str | None, artifacts: ArtifactStore | None
                     ) -> ModelRegistry:
    """The index in that PostgreSQL database, the artifacts under the workspace's registry directory."""
    from .local import LocalModelRegistry

    return LocalModelRegistry(*local_store(uri, local_root, database), artifacts)


def vertex_registry(local: LocalModelRegistry, project: str, region: str | None = None, bucket: str | None = None,
                    serving_image: str | None = None) -> ModelRegistry:
    """The Vertex AI backend over `local`. `UNITY_MLOPS_VERTEX_ENDPOINT` points the SDK at another endpoint (a
    regional or private one; an http:// one, such as a local test server, uses anonymous credentials)."""
    from .vertex import VertexModelRegistry, default_bucket

    endpoint = settings.vertex_endpoint()
    credentials = None
    if endpoint and endpoint.startswith("http://"):
        from google.auth.credentials import AnonymousCredentials

        credentials = AnonymousCredentials()
    return VertexModelRegistry(project, region or settings.vertex_region(),
                               bucket or settings.vertex_bucket() or default_bucket(project), local,
                               api_endpoint=endpoint, credentials=credentials, serving_image=serving_image)


def vertex_backend(uri: str, local_root: Path, database: str | None, artifacts: ArtifactStore | None
                   ) -> ModelRegistry:
    parts = urlsplit(uri)
    query = {k: v[-1] for k, v in parse_qs(parts.query).items()}
    region = parts.path.strip("/") or None
    if not parts.hostname:
        raise RegistryError(f"{uri}: name the project, as vertex://PROJECT/REGION?bucket=gs://BUCKET")
    from .local import LocalModelRegistry

    return vertex_registry(LocalModelRegistry(query.get("local") or local_root, database, artifacts), parts.netloc,
                           region, query.get("bucket"), query.get("serving_image"))
