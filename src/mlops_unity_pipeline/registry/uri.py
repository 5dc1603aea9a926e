"""Registries chosen by URI, as MLflow chooses its stores: one string in a config, the backend behind it.

    runs/_registry  or  file:///srv/registry       the local store (SQLite + content-addressed files)
    sqlite:///srv/registry/registry.db             the same, named by its database file
    vertex://PROJECT/REGION?bucket=gs://B          Vertex AI Model Registry, over the local store

A new backend registers a factory for its scheme (`register_backend`); configs then name it in `registry:`.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from urllib.parse import parse_qs, unquote, urlsplit

from .. import settings
from ..artifacts import ArtifactStore
from .base import ModelRegistry, RegistryError
from .local import LocalModelRegistry

# (the URI, the local store's root for backends that layer on it) -> registry
Factory = Callable[[str, Path], ModelRegistry]
_BACKENDS: dict[str, Factory] = {}


def register_backend(scheme: str, factory: Factory) -> None:
    _BACKENDS[scheme.lower()] = factory


def backends() -> list[str]:
    return sorted(_BACKENDS)


def open_registry(uri: str | Path, *, local_root: str | Path | None = None, database: str | None = None,
                  artifacts: ArtifactStore | None = None) -> ModelRegistry:
    """The registry `uri` names. A plain path is a local store. `local_root` is where layered backends (Vertex AI)
    keep their local history of record (default: the workspace's `_registry`). With a shared `database`, a local
    store keeps its index there (its directory then holds only artifacts)."""
    text = str(uri)
    scheme = urlsplit(text).scheme.lower() if "://" in text or text.startswith(("file:", "sqlite:")) else ""
    root = Path(local_root) if local_root else settings.Paths.resolve().workspace / settings.REGISTRY_DIRNAME
    if not scheme:
        return LocalModelRegistry(text, database, artifacts)
    if scheme in ("file", "sqlite"):
        path = Path(unquote(urlsplit(text).path))
        return LocalModelRegistry(path.parent if path.suffix == ".db" else path, database, artifacts)
    if scheme in ("postgresql", "postgres", "postgresql+psycopg"):  # the index in PostgreSQL, artifacts local
        return LocalModelRegistry(root, text, artifacts)
    try:
        factory = _BACKENDS[scheme]
    except KeyError:
        raise RegistryError(f"no registry backend for {scheme}: URIs (known: {', '.join(backends())}); "
                            "a plain path is a local registry") from None
    return factory(text, root)


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


def _vertex(uri: str, root: Path) -> ModelRegistry:
    parts = urlsplit(uri)
    query = {k: v[-1] for k, v in parse_qs(parts.query).items()}
    region = parts.path.strip("/") or None
    if not parts.hostname:
        raise RegistryError(f"{uri}: name the project, as vertex://PROJECT/REGION?bucket=gs://BUCKET")
    return vertex_registry(LocalModelRegistry(query.get("local") or root), parts.netloc, region,
                           query.get("bucket"), query.get("serving_image"))


register_backend("vertex", _vertex)
