"""A third party's registry backend with its own store: every version in one JSON file (written atomically, under
a lock file), its model files in a folder beside it. Aliases and the ledger reuse the product's `Ledger` on a
database of its own. Installed with one entry point: `[unity_mlops.registries] jsonreg = jsonreg_plugin:open_json`."""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import shutil
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path
from urllib.parse import urlsplit

from mlops_unity_pipeline.registry.base import (
    ModelRegistry,
    ModelVersion,
    RegistrationRequest,
    RegistryError,
    VersionNotFound,
    format_version,
    registry_asset_name,
)
from mlops_unity_pipeline.registry.ledger import Ledger
from mlops_unity_pipeline.store.database import open_database


class JsonRegistry(ModelRegistry):
    def __init__(self, root: Path) -> None:
        self.root = root.resolve()
        self.root.mkdir(parents=True, exist_ok=True)
        self.index = self.root / "versions.json"
        self._ledger = Ledger(open_database(self.root / "ledger.db"))

    @property
    def ledger(self) -> Ledger:
        return self._ledger

    @contextmanager
    def _locked(self):
        with open(self.root / ".lock", "w") as fh:
            fcntl.flock(fh, fcntl.LOCK_EX)
            yield

    def _read(self) -> list[dict]:
        return json.loads(self.index.read_text()) if self.index.exists() else []

    def _version(self, row: dict) -> ModelVersion:
        return ModelVersion(**{**row, "model_path": Path(row["model_path"])})

    def register(self, request: RegistrationRequest) -> ModelVersion:
        if not request.model_path.is_file():
            raise RegistryError(f"model file not found: {request.model_path}")
        with self._locked():
            rows = self._read()
            for row in rows:
                if request.run_key and row["run_key"] == request.run_key:
                    return self._version(row)  # a run registers at most once
            name = registry_asset_name(request.asset_name)
            number = 1 + sum(1 for r in rows if r["asset_name"] == name)
            now = datetime.now(timezone.utc)
            version = format_version(name, now, request.git_sha, number)
            folder = self.root / "models" / version
            folder.mkdir(parents=True)
            model = folder / request.model_path.name
            shutil.copyfile(request.model_path, model)
            files = {}
            for fname, path in request.files.items():
                shutil.copyfile(path, folder / fname)
                files[fname] = hashlib.sha256((folder / fname).read_bytes()).hexdigest()
            row = {"version": version, "asset_id": request.asset_id, "asset_name": name,
                   "behavior_name": request.behavior_name, "run_number": number, "job_id": request.job_id,
                   "created_at": now.isoformat(), "model_path": str(model),
                   "model_sha256": hashlib.sha256(model.read_bytes()).hexdigest(), "files": files,
                   "metrics": request.metrics, "lineage": request.lineage, "uri": f"jsonreg://{folder}",
                   "run_key": request.run_key}
            tmp = self.index.with_suffix(".tmp")
            tmp.write_text(json.dumps([*rows, row], indent=1))
            os.replace(tmp, self.index)
            return self._version(row)

    def find_run(self, run_key: str) -> ModelVersion | None:
        return next((self._version(r) for r in self._read() if r["run_key"] == run_key), None)

    def get(self, version: str) -> ModelVersion:
        for row in self._read():
            if row["version"] == version:
                return self._version(row)
        raise VersionNotFound(f"version {version!r} not found in the registry at {self.root}")

    def list(self, asset_name: str | None = None) -> list[ModelVersion]:
        wanted = registry_asset_name(asset_name) if asset_name else None
        return [self._version(r) for r in self._read() if wanted is None or r["asset_name"] == wanted]


def open_json(uri: str, local_root: Path, database: str | None, artifacts: object) -> JsonRegistry:
    """`jsonreg:///path/to/folder`."""
    return JsonRegistry(Path(urlsplit(uri).path))
