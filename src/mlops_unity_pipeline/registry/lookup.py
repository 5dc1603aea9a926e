"""The registry's hot read: `ASSET@ALIAS` to the model file, in one query on the database's own driver.

Game launchers and shell scripts run `unity-mlops models path NAME@ALIAS` at every start. Through the store layer
that process spends most of its life importing SQLAlchemy (docs/benchmarks/scale.md); this read needs none of it.
It answers only what it can answer for certain: a local store of this product's own backends, its schema at this
release's revision, the alias held by a version of that asset (by name), the version's model file on this machine.
Anything else is None, and the caller asks the registry (`ModelRegistry.resolve`), which gives every other answer
and every error. `tests/test_registry.py` holds the two to the same answers on SQLite and PostgreSQL.
"""

from __future__ import annotations

from pathlib import Path

from .. import plugins
from ..store.database import HEAD
from .base import registry_asset_name, split_ref
from .uri import local_store, scheme_of

_OURS = {"mlops_unity_pipeline.registry.uri:local_backend", "mlops_unity_pipeline.registry.uri:database_backend"}
# the alias, its version's model file, and the schema's revision, in one round trip
_QUERY = ("SELECT v.version, v.model_file, (SELECT version_num FROM alembic_version) FROM aliases a "
          "JOIN versions v ON v.version = a.version AND v.asset_name = a.asset_name "
          "WHERE a.asset_name = {p} AND a.alias = {p}")


def model_path(uri: str, local_root: Path, database: str | None, ref: str) -> Path | None:
    """The model file `ref` (ASSET@ALIAS) names in the registry `uri`, or None where only the registry can say."""
    parts = split_ref(ref)
    entry = plugins.entries("registries").get(scheme_of(uri))
    if parts is None or entry is None or entry.value not in _OURS:
        return None
    root, url = local_store(uri, local_root, database)
    root = root.resolve()
    asset, alias = registry_asset_name(parts[0]), parts[1]
    try:
        row = _postgresql(url, asset, alias) if url else _sqlite(root / "registry.db", asset, alias)
    except Exception:  # unreachable, not migrated, locked, anything: the registry's own answer and message
        return None
    if row is None or row[2] != HEAD:
        return None
    path = root / "models" / row[0] / row[1]
    return path if path.is_file() else None


def _sqlite(path: Path, asset: str, alias: str) -> tuple | None:
    import sqlite3

    if not path.is_file():
        return None
    conn = sqlite3.connect(f"{path.as_uri()}?mode=ro", uri=True, timeout=30)
    try:
        return conn.execute(_QUERY.format(p="?"), (asset, alias)).fetchone()
    finally:
        conn.close()


def _postgresql(url: str, asset: str, alias: str) -> tuple | None:
    scheme, _, rest = url.partition("://")
    if scheme not in ("postgresql", "postgres", "postgresql+psycopg"):
        return None  # a SQLite URL or another driver: the store layer's business
    import psycopg

    with psycopg.connect(f"postgresql://{rest}", connect_timeout=10, autocommit=True) as conn:
        return conn.execute(_QUERY.format(p="%s"), (asset, alias)).fetchone()
