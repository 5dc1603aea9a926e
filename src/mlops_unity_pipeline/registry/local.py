"""Local registry: an index in a database (embedded SQLite by default, or the shared PostgreSQL) + a
content-addressed artifact store. No server.

Layout under the registry root::

    registry.db                       versions, numbered per asset inside one serialized write transaction
                                      (the index lives in the `database` instead when one is configured)
    objects/<ab>/<sha256>             blobs, written once (tmp file + fsync + rename), read-only
    models/<version>/                 a read-only view of one version: hard links to its blobs + manifest.json

With a shared artifact store (`gs://bucket/prefix`), blobs and manifests are also uploaded there (as
`registry/objects/<sha256>` and `registry/models/<version>/manifest.json`) before the version's row is committed,
and a machine that reads a version registered elsewhere fetches them (checked against their sha256).

A registration either completes (row committed, version directory in place) or leaves nothing visible:
the version directory is assembled under a temporary name and renamed after the row is committed.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import stat
import uuid
from datetime import datetime, timezone
from pathlib import Path

from sqlalchemy import text
from sqlalchemy.exc import SQLAlchemyError

from ..artifacts import ArtifactStore
from ..durable import fsync_dir, replacing
from ..store import Database, open_database
from .base import (
    ModelRegistry,
    ModelVersion,
    RegistrationRequest,
    RegistryError,
    VersionNotFound,
    format_version,
    registry_asset_name,
)
from .ledger import Ledger

_COLUMNS = ("version, asset_name, asset_id, behavior_name, run_number, job_id, created_at, model_sha256, model_file, "
            "files_json, metrics_json, lineage_json, run_key")
_COUNT_UP = ("INSERT INTO registry_assets (asset_name, versions) VALUES (:a, 1) ON CONFLICT (asset_name) DO UPDATE "
             "SET versions = registry_assets.versions + 1")
_INSERT = (f"INSERT INTO versions ({_COLUMNS}) VALUES (:version, :asset_name, :asset_id, :behavior_name, :run_number, "
           ":job_id, :created_at, :model_sha256, :model_file, :files_json, :metrics_json, :lineage_json, :run_key)")
STORE = "registry"  # the write-lock name of the registry's tables (versions, aliases, ledger, Vertex AI links)


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


class LocalModelRegistry(ModelRegistry):
    local_history = True

    def __init__(self, root: str | Path, database: str | None = None, artifacts: ArtifactStore | None = None) -> None:
        self.root = Path(root).resolve()
        self.db: Database = open_database(database or self.root / "registry.db")
        self.artifacts = artifacts  # shared object storage: every version's blobs, for any machine to read
        self.objects = self.root / "objects"
        self.models = self.root / "models"
        self._ledger: Ledger | None = None

    @property
    def ledger(self) -> Ledger:
        if self._ledger is None:
            self._ledger = Ledger(self.db)
        return self._ledger

    # ------------------------------------------------------------------ storage
    def _rows(self, sql: str, **params: object) -> list[tuple]:
        """Rows of the index; an embedded registry never written has none (and reading it creates nothing)."""
        if self.db.is_empty():
            return []
        try:
            return self.db.all(sql, params)
        except SQLAlchemyError as exc:
            raise RegistryError(f"cannot read the model registry at {self.root}: {_reason(exc)}") from None

    def put_blob(self, src: Path) -> str:
        """Copy a file into the store once; return its sha256."""
        digest = sha256_file(src)
        dest = self.objects / digest[:2] / digest
        if not dest.exists():
            with src.open("rb") as fin, replacing(dest, mode=0o444) as fout:  # read-only from its creation
                shutil.copyfileobj(fin, fout, 1 << 20)
        return digest

    def blob_path(self, digest: str) -> Path:
        return self.objects / digest[:2] / digest

    # ------------------------------------------------------------------ API
    def register(self, request: RegistrationRequest) -> ModelVersion:
        return self._register_all([request])[0]

    def register_many(self, requests: list[RegistrationRequest]) -> list[ModelVersion]:
        """Several versions (one per behaviour of a run) in one transaction: all or none. Idempotent per run key,
        like `register`. One request is `register` itself (which a subclass may extend)."""
        if len(requests) == 1:
            return [self.register(requests[0])]
        return self._register_all(requests)

    def _register_all(self, requests: list[RegistrationRequest]) -> list[ModelVersion]:
        keys = [r.run_key for r in requests]
        if all(keys):
            existing = [self.find_run(k) for k in keys]  # type: ignore[arg-type]
            if all(v is not None for v in existing):
                return existing  # type: ignore[return-value]
        for request in requests:
            if not request.model_path.is_file():
                raise RegistryError(f"model file not found: {request.model_path}")
        try:
            self.root.mkdir(parents=True, exist_ok=True)
            blobs = []
            for request in requests:
                model_sha = self.put_blob(request.model_path)
                files = {name: self.put_blob(Path(p)) for name, p in request.files.items()}
                self._publish([model_sha, *files.values()])  # before the row exists: a version is never blob-less
                blobs.append((model_sha, files))
        except OSError as exc:
            raise RegistryError(f"cannot write artifacts into the registry at {self.root}: {exc}") from None
        now = datetime.now(timezone.utc)
        staged: list[str] = []
        renamed: list[str] = []
        versions: list[str] = []
        try:
            with self.db.write(STORE) as conn:
                if keys[0]:  # a racing retry of the same run may have committed since the check above
                    done = conn.execute(text("SELECT version FROM versions WHERE run_key = :k"),
                                        {"k": keys[0]}).first()
                    if done is not None:
                        return [self.find_run(k) or self.get(done[0]) for k in keys]  # type: ignore[arg-type]
                for request, (model_sha, files) in zip(requests, blobs, strict=True):
                    model_file = f"{request.behavior_name}.onnx"
                    asset = registry_asset_name(request.asset_name)
                    row = conn.execute(text("SELECT COALESCE(MAX(run_number), 0) FROM versions "
                                            "WHERE asset_name = :a"), {"a": asset}).first()
                    run_number = int(row[0]) + 1
                    version = format_version(request.asset_name, now, request.git_sha, run_number)
                    staged.append(version)
                    self._assemble(self._staging(version), version, model_file, model_sha, files, request, now)
                    conn.execute(text(_INSERT), {
                        "version": version, "asset_name": asset, "asset_id": request.asset_id,
                        "behavior_name": request.behavior_name, "run_number": run_number, "job_id": request.job_id,
                        "created_at": now.isoformat(), "model_sha256": model_sha, "model_file": model_file,
                        "files_json": json.dumps(files, sort_keys=True),
                        "metrics_json": json.dumps(request.metrics, sort_keys=True, default=str),
                        "lineage_json": json.dumps(request.lineage, sort_keys=True, default=str),
                        "run_key": request.run_key,
                    })
                    conn.execute(text(_COUNT_UP), {"a": asset})
                    versions.append(version)
                for version in versions:
                    if self.artifacts is not None:
                        self.artifacts.upload(self._staging(version) / "manifest.json",
                                              f"registry/models/{version}/manifest.json")
                    os.replace(self._staging(version), self.models / version)
                    renamed.append(version)
        except BaseException as exc:  # the commit may fail too: then the renamed directories go as well
            for version in staged:
                shutil.rmtree(self._staging(version), ignore_errors=True)
            for version in renamed:
                shutil.rmtree(self.models / version, ignore_errors=True)
            if isinstance(exc, (OSError, SQLAlchemyError)):
                raise RegistryError(f"registration failed, nothing was registered: {_reason(exc)}") from None
            raise
        fsync_dir(self.models)
        return [self.get(v) for v in versions]

    def _staging(self, version: str) -> Path:
        return self.models / f".{version}.tmp"

    def _assemble(
        self, staging: Path, version: str, model_file: str, model_sha: str, files: dict[str, str],
        request: RegistrationRequest, now: datetime,
    ) -> None:
        shutil.rmtree(staging, ignore_errors=True)
        staging.mkdir(parents=True)
        os.link(self.blob_path(model_sha), staging / model_file)
        for name, digest in files.items():
            os.link(self.blob_path(digest), staging / name)
        manifest = {
            "version": version, "asset_id": request.asset_id, "asset_name": request.asset_name,
            "behavior_name": request.behavior_name, "job_id": request.job_id, "created_at": now.isoformat(),
            "model": {"file": model_file, "sha256": model_sha}, "files": files,
            "metrics": request.metrics, "lineage": request.lineage, "run_key": request.run_key,
        }
        (staging / "manifest.json").write_text(json.dumps(manifest, indent=2, sort_keys=True, default=str))
        (staging / "manifest.json").chmod(stat.S_IRUSR | stat.S_IRGRP | stat.S_IROTH)

    def _from_row(self, row: tuple) -> ModelVersion:
        (version, asset, asset_id, behavior, run_number, job_id, created, sha, model_file, files_json,
         metrics_json, lineage_json, run_key) = row
        path = self.models / version / model_file
        return ModelVersion(
            version=version, asset_id=asset_id, asset_name=asset, behavior_name=behavior, run_number=run_number,
            job_id=job_id, created_at=created, model_path=path, model_sha256=sha,
            files=json.loads(files_json), metrics=json.loads(metrics_json), lineage=json.loads(lineage_json),
            uri=f"file://{self.models / version}", run_key=run_key,
        )

    def get(self, version: str) -> ModelVersion:
        rows = self._rows(f"SELECT {_COLUMNS} FROM versions WHERE version = :v", v=version)
        if not rows:
            raise VersionNotFound(f"model version {version!r} not found in {self.root}")
        found = self._from_row(rows[0])
        if self.artifacts is not None and not found.model_path.parent.is_dir():
            self._materialize(found)  # registered on another machine: its files come from the artifact store
        return found

    # ------------------------------------------------------------------ shared artifact store
    def _publish(self, digests: list[str]) -> None:
        if self.artifacts is None:
            return
        for digest in dict.fromkeys(digests):  # content-addressed: a blob already there is the same blob
            key = f"registry/objects/{digest}"
            if key not in self.artifacts.sizes(key):
                self.artifacts.upload(self.blob_path(digest), key)

    def _materialize(self, v: ModelVersion) -> None:
        """Fetch a version's blobs (checked against their sha256) and assemble its read-only directory."""
        assert self.artifacts is not None
        for digest in {v.model_sha256, *v.files.values()}:
            dest = self.blob_path(digest)
            if dest.exists():
                continue
            tmp = dest.with_name(f".{digest}.{uuid.uuid4().hex}.fetch")
            if not self.artifacts.download(f"registry/objects/{digest}", tmp) or sha256_file(tmp) != digest:
                tmp.unlink(missing_ok=True)
                raise RegistryError(f"{v.version}: blob {digest} is missing or corrupt in {self.artifacts.uri}")
            tmp.chmod(stat.S_IRUSR | stat.S_IRGRP | stat.S_IROTH)
            os.replace(tmp, dest)
        staging = self.models / f".{v.version}.{uuid.uuid4().hex}.fetch"
        shutil.rmtree(staging, ignore_errors=True)
        staging.mkdir(parents=True)
        os.link(self.blob_path(v.model_sha256), staging / v.model_path.name)
        for name, digest in v.files.items():
            os.link(self.blob_path(digest), staging / name)
        self.artifacts.download(f"registry/models/{v.version}/manifest.json", staging / "manifest.json")
        try:
            os.replace(staging, self.models / v.version)
        except OSError:  # another process materialized it first
            shutil.rmtree(staging, ignore_errors=True)

    def discard_incomplete(self, version: str) -> None:
        """Undo a registration whose remote half failed (a composite registry's compensation): the version was
        never complete, never aliased, and is removed whole, so that nothing exists on one side only."""
        staging = self.models / f".{version}.discarded"
        with self.db.write(STORE) as conn:
            gone = conn.execute(text("DELETE FROM versions WHERE version = :v RETURNING asset_name"),
                                {"v": version}).first()
            if gone is not None:
                conn.execute(text("UPDATE registry_assets SET versions = versions - 1 WHERE asset_name = :a"),
                             {"a": gone[0]})
                conn.execute(text("DELETE FROM registry_assets WHERE asset_name = :a AND versions <= 0"),
                             {"a": gone[0]})
            if (self.models / version).exists():
                os.replace(self.models / version, staging)
        shutil.rmtree(staging, ignore_errors=True)

    def find_run(self, run_key: str) -> ModelVersion | None:
        rows = self._rows(f"SELECT {_COLUMNS} FROM versions WHERE run_key = :k", k=run_key)
        return self._from_row(rows[0]) if rows else None

    def list(self, asset_name: str | None = None) -> list[ModelVersion]:
        if asset_name:
            rows = self._rows(f"SELECT {_COLUMNS} FROM versions WHERE asset_name = :a ORDER BY run_number",
                              a=registry_asset_name(asset_name))
        else:
            rows = self._rows(f"SELECT {_COLUMNS} FROM versions ORDER BY asset_name, run_number")
        return [self._from_row(r) for r in rows]

    def assets(self) -> list[tuple[str, int]]:
        return self.assets_page(None)[0]

    def assets_page(self, limit: int | None, offset: int = 0) -> tuple[list[tuple[str, int]], int]:
        page = " LIMIT :limit OFFSET :offset" if limit is not None else ""
        rows = self._rows("SELECT asset_name, versions FROM registry_assets ORDER BY asset_name" + page,
                          limit=limit, offset=offset)
        total = self._rows("SELECT COUNT(*) FROM registry_assets")
        return [(a, int(n)) for a, n in rows], (total[0][0] if total else 0)

    def versions_page(self, limit: int, offset: int = 0, asset_name: str | None = None
                      ) -> tuple[list[ModelVersion], int]:
        if asset_name:
            return self.page_ascending(registry_asset_name(asset_name), limit, offset)
        total = self._rows("SELECT COUNT(*) FROM versions")
        rows = self._rows(f"SELECT {_COLUMNS} FROM versions ORDER BY asset_name, run_number LIMIT :limit "
                          "OFFSET :offset", limit=limit, offset=offset)
        return [self._from_row(r) for r in rows], (total[0][0] if total else 0)

    def page_ascending(self, asset: str, limit: int, offset: int) -> tuple[list[ModelVersion], int]:
        total = self._rows("SELECT COUNT(*) FROM versions WHERE asset_name = :a", a=asset)
        rows = self._rows(f"SELECT {_COLUMNS} FROM versions WHERE asset_name = :a ORDER BY run_number "
                          "LIMIT :limit OFFSET :offset", a=asset, limit=limit, offset=offset)
        return [self._from_row(r) for r in rows], (total[0][0] if total else 0)

    def has_asset(self, asset_name: str) -> bool:
        return bool(self._rows("SELECT 1 FROM versions WHERE asset_name = :a LIMIT 1", a=asset_name))

    def asset_of_id(self, asset_id: str) -> str | None:
        rows = self._rows("SELECT asset_name FROM versions WHERE asset_id = :i LIMIT 1", i=asset_id)
        return rows[0][0] if rows else None

    def page(self, asset_name: str, limit: int, offset: int = 0) -> tuple[list[ModelVersion], int]:
        asset = registry_asset_name(asset_name)
        total = self._rows("SELECT COUNT(*) FROM versions WHERE asset_name = :a", a=asset)
        rows = self._rows(f"SELECT {_COLUMNS} FROM versions WHERE asset_name = :a ORDER BY run_number DESC "
                          "LIMIT :limit OFFSET :offset", a=asset, limit=limit, offset=offset)
        return [self._from_row(r) for r in rows], (total[0][0] if total else 0)

    def metric_series(self, asset_name: str, path: tuple[str, ...]) -> list[tuple[int, float | None]]:
        """One metric across an asset's versions, extracted by the database (the UI charts thousands of them)."""
        if self.db.is_sqlite:
            value = "json_extract(metrics_json, :p)"
            p: object = "$" + "".join(f'."{k}"' for k in path)
        else:  # numbers only, as SQLite's json_extract gives them
            value = ("CASE WHEN jsonb_typeof(CAST(metrics_json AS jsonb) #> CAST(:p AS text[])) = 'number' "
                     "THEN CAST(CAST(metrics_json AS jsonb) #>> CAST(:p AS text[]) AS double precision) END")
            p = list(path)
        rows = self._rows(f"SELECT run_number, {value} FROM versions WHERE asset_name = :a ORDER BY run_number",
                          p=p, a=registry_asset_name(asset_name))
        return [(n, float(v) if isinstance(v, int | float) else None) for n, v in rows]


def _reason(exc: BaseException) -> str:
    return str(getattr(exc, "orig", None) or exc).strip().splitlines()[0]
