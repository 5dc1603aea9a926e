"""Embedded local registry: SQLite index + content-addressed artifact store. No server.

Layout under the registry root::

    registry.db                       versions, numbered per asset inside one IMMEDIATE transaction
    objects/<ab>/<sha256>             blobs, written once (tmp file + fsync + rename), read-only
    models/<version>/                 a read-only view of one version: hard links to its blobs + manifest.json

A registration either completes (row committed, version directory in place) or leaves nothing visible:
the version directory is assembled under a temporary name and renamed after the row is committed.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import sqlite3
import stat
from contextlib import closing
from datetime import datetime, timezone
from pathlib import Path

from ..sqlite_store import connect
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

_SCHEMA = """
CREATE TABLE IF NOT EXISTS versions (
    version        TEXT PRIMARY KEY,
    asset_name     TEXT NOT NULL,
    asset_id       TEXT NOT NULL,
    behavior_name  TEXT NOT NULL,
    run_number     INTEGER NOT NULL,
    job_id         TEXT NOT NULL,
    created_at     TEXT NOT NULL,
    model_sha256   TEXT NOT NULL,
    model_file     TEXT NOT NULL,
    files_json     TEXT NOT NULL,
    metrics_json   TEXT NOT NULL,
    lineage_json   TEXT NOT NULL,
    run_key        TEXT,
    UNIQUE (asset_name, run_number)
);
"""
_COLUMNS = ("version, asset_name, asset_id, behavior_name, run_number, job_id, created_at, model_sha256, model_file, "
            "files_json, metrics_json, lineage_json, run_key")


def _migrate(conn: sqlite3.Connection) -> None:
    """Stores made before runs were recorded get the column; a run maps to at most one version."""
    if "run_key" not in {r[1] for r in conn.execute("PRAGMA table_info(versions)")}:
        conn.execute("ALTER TABLE versions ADD COLUMN run_key TEXT")
    conn.execute("CREATE UNIQUE INDEX IF NOT EXISTS versions_by_run ON versions (run_key) WHERE run_key IS NOT NULL")


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class LocalModelRegistry(ModelRegistry):
    def __init__(self, root: str | Path) -> None:
        self.root = Path(root).resolve()
        self.db_path = self.root / "registry.db"
        self.objects = self.root / "objects"
        self.models = self.root / "models"
        self._schema_ready = False
        self._ledger: Ledger | None = None

    @property
    def ledger(self) -> Ledger:
        if self._ledger is None:
            self._ledger = Ledger(self.connect)
        return self._ledger

    # ------------------------------------------------------------------ storage
    def connect(self) -> sqlite3.Connection:
        """The registry's SQLite database, shared by the stores layered on it (the ledger, Vertex AI links)."""
        try:
            self.root.mkdir(parents=True, exist_ok=True)
            conn = connect(self.db_path, None if self._schema_ready else _SCHEMA)
            if not self._schema_ready:
                _migrate(conn)
        except (OSError, sqlite3.Error) as exc:
            raise RegistryError(f"cannot open the model registry at {self.root}: {exc}") from None
        self._schema_ready = True
        return conn

    def put_blob(self, src: Path) -> str:
        """Copy a file into the store once; return its sha256."""
        digest = sha256_file(src)
        dest = self.objects / digest[:2] / digest
        if not dest.exists():
            dest.parent.mkdir(parents=True, exist_ok=True)
            tmp = dest.with_name(f".{digest}.{os.getpid()}.tmp")
            with src.open("rb") as fin, tmp.open("wb") as fout:
                shutil.copyfileobj(fin, fout, 1 << 20)
                fout.flush()
                os.fsync(fout.fileno())
            tmp.chmod(stat.S_IRUSR | stat.S_IRGRP | stat.S_IROTH)
            os.replace(tmp, dest)
            _fsync_dir(dest.parent)
        return digest

    def blob_path(self, digest: str) -> Path:
        return self.objects / digest[:2] / digest

    # ------------------------------------------------------------------ API
    def register(self, request: RegistrationRequest) -> ModelVersion:
        if request.run_key:
            existing = self.find_run(request.run_key)
            if existing is not None:
                return existing
        if not request.model_path.is_file():
            raise RegistryError(f"model file not found: {request.model_path}")
        try:
            self.root.mkdir(parents=True, exist_ok=True)
            model_sha = self.put_blob(request.model_path)
            files = {name: self.put_blob(Path(p)) for name, p in request.files.items()}
        except OSError as exc:
            raise RegistryError(f"cannot write artifacts into the registry at {self.root}: {exc}") from None
        model_file = f"{request.behavior_name}.onnx"
        asset = registry_asset_name(request.asset_name)
        now = datetime.now(timezone.utc)
        version: str | None = None
        renamed = False
        with closing(self.connect()) as conn:
            try:
                conn.execute("BEGIN IMMEDIATE")
                if request.run_key:  # a racing retry of the same run may have committed since the check above
                    done = conn.execute("SELECT version FROM versions WHERE run_key = ?",
                                        (request.run_key,)).fetchone()
                    if done is not None:
                        conn.execute("ROLLBACK")
                        return self.get(done[0])
                row = conn.execute(
                    "SELECT COALESCE(MAX(run_number), 0) FROM versions WHERE asset_name = ?", (asset,)
                ).fetchone()
                run_number = int(row[0]) + 1
                version = format_version(request.asset_name, now, request.git_sha, run_number)
                self._assemble(self._staging(version), version, model_file, model_sha, files, request, now)
                conn.execute(
                    f"INSERT INTO versions ({_COLUMNS}) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?)",
                    (
                        version, asset, request.asset_id, request.behavior_name, run_number, request.job_id,
                        now.isoformat(), model_sha, model_file, json.dumps(files, sort_keys=True),
                        json.dumps(request.metrics, sort_keys=True, default=str),
                        json.dumps(request.lineage, sort_keys=True, default=str), request.run_key,
                    ),
                )
                os.replace(self._staging(version), self.models / version)
                renamed = True
                conn.execute("COMMIT")
            except BaseException as exc:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                if version is not None:
                    shutil.rmtree(self._staging(version), ignore_errors=True)
                    if renamed:
                        shutil.rmtree(self.models / version, ignore_errors=True)
                if isinstance(exc, (OSError, sqlite3.Error)):
                    raise RegistryError(f"registration failed, nothing was registered: {exc}") from None
                raise
        _fsync_dir(self.models)
        return self.get(version)

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
        if not self.db_path.exists():
            raise VersionNotFound(f"model version {version!r} not found (the registry at {self.root} is empty)")
        with closing(self.connect()) as conn:
            row = conn.execute(f"SELECT {_COLUMNS} FROM versions WHERE version = ?", (version,)).fetchone()
        if row is None:
            raise VersionNotFound(f"model version {version!r} not found in {self.root}")
        return self._from_row(row)

    def discard_incomplete(self, version: str) -> None:
        """Undo a registration whose remote half failed (a composite registry's compensation): the version was
        never complete, never aliased, and is removed whole, so that nothing exists on one side only."""
        with closing(self.connect()) as conn:
            conn.execute("BEGIN IMMEDIATE")
            try:
                conn.execute("DELETE FROM versions WHERE version = ?", (version,))
                staging = self.models / f".{version}.discarded"
                if (self.models / version).exists():
                    os.replace(self.models / version, staging)
                conn.execute("COMMIT")
            except BaseException:
                conn.execute("ROLLBACK")
                raise
        shutil.rmtree(staging, ignore_errors=True)

    def find_run(self, run_key: str) -> ModelVersion | None:
        if not self.db_path.exists():
            return None
        with closing(self.connect()) as conn:
            row = conn.execute(f"SELECT {_COLUMNS} FROM versions WHERE run_key = ?", (run_key,)).fetchone()
        return self._from_row(row) if row else None

    def list(self, asset_name: str | None = None) -> list[ModelVersion]:
        if not self.db_path.exists():
            return []
        with closing(self.connect()) as conn:
            if asset_name:
                rows = conn.execute(
                    f"SELECT {_COLUMNS} FROM versions WHERE asset_name = ? ORDER BY run_number",
                    (registry_asset_name(asset_name),),
                ).fetchall()
            else:
                rows = conn.execute(f"SELECT {_COLUMNS} FROM versions ORDER BY asset_name, run_number").fetchall()
        return [self._from_row(r) for r in rows]

    def assets(self) -> list[tuple[str, int]]:
        if not self.db_path.exists():
            return []
        with closing(self.connect()) as conn:
            return conn.execute("SELECT asset_name, COUNT(*) FROM versions GROUP BY asset_name "
                                "ORDER BY asset_name").fetchall()

    def page(self, asset_name: str, limit: int, offset: int = 0) -> tuple[list[ModelVersion], int]:
        if not self.db_path.exists():
            return [], 0
        asset = registry_asset_name(asset_name)
        with closing(self.connect()) as conn:
            total = conn.execute("SELECT COUNT(*) FROM versions WHERE asset_name = ?", (asset,)).fetchone()[0]
            rows = conn.execute(f"SELECT {_COLUMNS} FROM versions WHERE asset_name = ? ORDER BY run_number DESC "
                                "LIMIT ? OFFSET ?", (asset, limit, offset)).fetchall()
        return [self._from_row(r) for r in rows], total

    def metric_series(self, asset_name: str, path: tuple[str, ...]) -> list[tuple[int, float | None]]:
        if not self.db_path.exists():
            return []
        json_path = "$" + "".join(f'."{k}"' for k in path)
        with closing(self.connect()) as conn:
            rows = conn.execute("SELECT run_number, json_extract(metrics_json, ?) FROM versions WHERE asset_name = ? "
                                "ORDER BY run_number", (json_path, registry_asset_name(asset_name))).fetchall()
        return [(n, float(v) if isinstance(v, int | float) else None) for n, v in rows]
