"""One small interface over where artifacts live, chosen by URI: a directory (`/srv/artifacts`, `file:///...`, for a
filesystem the machines share) or a bucket (`gs://bucket/prefix`, with google-cloud-storage).

Keys are relative paths (`runs/<job>/metrics.json`). Uploads are whole-object (a reader sees the old or the new
object, never half of one; GCS gives that, the directory backend renames a temporary file), so a killed upload
leaves nothing that a restart could mistake for a complete file.
"""

from __future__ import annotations

import os
import shutil
import uuid
from pathlib import Path
from typing import Protocol
from urllib.parse import unquote, urlsplit

from ..errors import UserError


class ArtifactError(UserError):
    """The artifact store cannot be reached or written; the message names it and what to do."""


class ArtifactStore(Protocol):
    uri: str

    def upload(self, local: Path, key: str) -> None: ...

    def download(self, key: str, local: Path) -> bool:
        """False when there is no such object."""

    def sizes(self, prefix: str) -> dict[str, int]:
        """Every object under `prefix`: key -> size in bytes."""

    def url(self, key: str) -> str: ...


def _download_atomic(local: Path, write) -> None:
    local.parent.mkdir(parents=True, exist_ok=True)
    tmp = local.with_name(f".{local.name}.{uuid.uuid4().hex}.part")
    write(tmp)
    os.replace(tmp, local)


class DirectoryStore:
    def __init__(self, root: str | Path) -> None:
        text = str(root)
        self.root = Path(unquote(urlsplit(text).path) if text.startswith("file:") else text).resolve()
        self.uri = f"file://{self.root}"

    def _path(self, key: str) -> Path:
        path = (self.root / key).resolve()
        if self.root not in path.parents:
            raise ArtifactError(f"artifact key {key!r} leaves the store {self.uri}")
        return path

    def upload(self, local: Path, key: str) -> None:
        dest = self._path(key)
        _download_atomic(dest, lambda tmp: shutil.copyfile(local, tmp))

    def download(self, key: str, local: Path) -> bool:
        src = self._path(key)
        if not src.is_file():
            return False
        _download_atomic(local, lambda tmp: shutil.copyfile(src, tmp))
        return True

    def sizes(self, prefix: str) -> dict[str, int]:
        base = self._path(prefix) if prefix else self.root
        if not base.is_dir():
            return {}
        return {str(p.relative_to(self.root)): p.stat().st_size for p in base.rglob("*")
                if p.is_file() and not p.name.endswith(".part")}

    def url(self, key: str) -> str:
        return f"{self.uri}/{key}"


class GCSStore:
    """A bucket and a prefix. Credentials are Application Default Credentials (Workload Identity on GKE); with
    `STORAGE_EMULATOR_HOST` set, the client talks to that emulator anonymously."""

    def __init__(self, uri: str, client=None) -> None:
        try:
            from google.cloud import storage
        except ImportError:
            raise ArtifactError(f"artifacts at {uri} need google-cloud-storage",
                                hint="pip install 'unity-mlops[gcs]'") from None
        parts = urlsplit(uri)
        if not parts.netloc:
            raise ArtifactError(f"{uri}: name the bucket, as gs://BUCKET/PREFIX")
        self.uri = uri.rstrip("/")
        self.prefix = parts.path.strip("/")
        if client is None:
            from google.auth import exceptions as auth_exc

            try:
                client = storage.Client()
            except auth_exc.GoogleAuthError as exc:
                raise ArtifactError(f"no credentials for {uri}: {str(exc).splitlines()[0][:200]}",
                                    hint="use Workload Identity, or set GOOGLE_APPLICATION_CREDENTIALS to a "
                                         "service-account key file") from None
        self._client = client
        self.bucket = self._client.bucket(parts.netloc)

    # how long a transient outage (the bucket unreachable, a 5xx, a 429) is retried, with exponential backoff, before
    # an operation fails: a job's checkpoint and model uploads ride out a minute or two without the bucket
    outage_s: float = 180.0

    def _retry(self):
        from google.cloud.storage.retry import DEFAULT_RETRY

        return DEFAULT_RETRY.with_timeout(self.outage_s)

    def _name(self, key: str) -> str:
        return f"{self.prefix}/{key}" if self.prefix else key

    def _errors(self, what: str, fn, missing_ok: bool = False):
        from google.api_core import exceptions as gexc
        from google.auth import exceptions as auth_exc

        try:
            return fn()
        except gexc.NotFound:
            if missing_ok:  # a missing object, for the caller to answer
                raise
            raise ArtifactError(f"{what} {self.uri}: the bucket does not exist",
                                hint="create it, or fix the gs:// URI") from None
        except (gexc.GoogleAPIError, auth_exc.GoogleAuthError, OSError) as exc:
            raise ArtifactError(f"{what} {self.uri}: {str(exc).splitlines()[0][:300]}",
                                hint="check the bucket exists and the credentials may write to it") from None

    def upload(self, local: Path, key: str) -> None:
        self._errors("cannot upload to", lambda: self.bucket.blob(self._name(key)).upload_from_filename(
            str(local), retry=self._retry()))  # a whole file under its key: idempotent, so always retried

    def download(self, key: str, local: Path) -> bool:
        from google.api_core import exceptions as gexc

        try:
            _download_atomic(local, lambda tmp: self._errors(
                "cannot download from", lambda: self.bucket.blob(self._name(key)).download_to_filename(
                    str(tmp), retry=self._retry()), missing_ok=True))
        except gexc.NotFound:
            for leftover in local.parent.glob(f".{local.name}.*.part"):
                leftover.unlink(missing_ok=True)
            return False
        return True

    def sizes(self, prefix: str) -> dict[str, int]:
        start = self._name(prefix)
        skip = len(self.prefix) + 1 if self.prefix else 0
        blobs = self._errors("cannot list", lambda: list(self._client.list_blobs(self.bucket, prefix=start,
                                                                                 retry=self._retry())))
        return {b.name[skip:]: int(b.size or 0) for b in blobs}

    def url(self, key: str) -> str:
        return f"gs://{self.bucket.name}/{self._name(key)}"


def open_artifacts(uri: str | Path | None) -> ArtifactStore | None:
    """The store a URI names; None (no shared store: artifacts stay in the local workspace) for an empty one."""
    if not uri:
        return None
    from .. import plugins

    text = str(uri)
    scheme = urlsplit(text).scheme.lower() if "://" in text else "file"
    if scheme not in plugins.names("artifact_stores"):
        raise ArtifactError(f"no artifact store for {scheme}:// URIs (installed: "
                            f"{', '.join(plugins.names('artifact_stores'))})",
                            hint="use gs://BUCKET/PREFIX or a directory, or install the package that adds it")
    return plugins.load("artifact_stores", scheme)(text)
