"""Files that survive kill -9 and power loss: a reader, or a restart, sees a file's old content or its new, never
part of it. Job state, registry blobs, the webhook spool, fast-trainer checkpoints, demonstrations and dashboard
tokens are written this way.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import BinaryIO


def fsync_dir(path: Path) -> None:
    """Make a rename or a new file in `path` durable (POSIX keeps directory entries in the directory's own data)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


@contextmanager
def replacing(path: Path, mode: int = 0o644) -> Iterator[BinaryIO]:
    """Write `path` whole: the caller writes a new file beside it, which on a clean exit is synced, renamed over
    `path`, and the directory synced; on an exception it is removed and `path` is untouched. `mode` is the new
    file's from its creation (0o600 for what only its owner may read), the umask applied."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")  # unique: processes and threads race on a path
    fh = os.fdopen(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode), "wb")
    try:
        with fh:
            yield fh
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    fsync_dir(path.parent)
