"""Mirroring a directory to the artifact store: what changed goes up, what is missing comes down.

"Changed" is judged by the local file's (mtime, size) against what this process last uploaded or downloaded: a
checkpoint rewritten in place keeps its size, so sizes alone would miss it.
"""

from __future__ import annotations

from pathlib import Path

from .store import ArtifactStore

SKIP_SUFFIXES = (".tmp", ".part", ".lock", ".pid")
Seen = dict[Path, tuple[int, int]]


def stamp(path: Path) -> tuple[int, int] | None:
    try:
        st = path.stat()
    except FileNotFoundError:  # rotated away while we walked (an old checkpoint)
        return None
    return st.st_mtime_ns, st.st_size


def push_tree(store: ArtifactStore, local: Path, prefix: str, seen: Seen) -> int:
    """Upload every file under `local` changed since `seen` recorded it; returns how many."""
    if not local.is_dir():
        return 0
    sent = 0
    # a trainer's `checkpoint.pt` names its step's files: it goes up last, so a stored one is always complete
    for path in sorted(local.rglob("*"), key=lambda p: (p.name == "checkpoint.pt", str(p))):
        if not path.is_file() or path.name.startswith(".") or path.suffix in SKIP_SUFFIXES:
            continue
        mark = stamp(path)
        if mark is None or seen.get(path) == mark:
            continue
        store.upload(path, f"{prefix}/{path.relative_to(local).as_posix()}")
        seen[path] = mark
        sent += 1
    return sent


def pull_tree(store: ArtifactStore, prefix: str, local: Path, seen: Seen) -> int:
    """Download every object under `prefix` that is missing locally; returns how many."""
    got = 0
    for key in sorted(store.sizes(prefix)):
        dest = local / key[len(prefix) + 1:]
        if not dest.exists() and store.download(key, dest):
            seen[dest] = stamp(dest) or (0, 0)
            got += 1
    return got


def mirror_tree(store: ArtifactStore, prefix: str, local: Path) -> int:
    """Download every object under `prefix` missing locally or held here at another size: a read-only view of what
    other machines wrote (the dashboard's runs); returns how many."""
    got = 0
    for key, size in sorted(store.sizes(prefix).items()):
        dest = local / key[len(prefix) + 1:]
        mark = stamp(dest)
        if (mark is None or mark[1] != size) and store.download(key, dest):
            got += 1
    return got
