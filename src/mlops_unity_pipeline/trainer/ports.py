"""Port ranges for `mlagents-learn --base-port` that no other job of this product on the host can take.

ML-Agents listens on `base + worker` for each of `--num-envs` workers. Probing for a free port and releasing it
(what the trainer itself does) races with every other job starting at the same moment. So a job *reserves* its
range: one lock file per port in a host-wide directory, each held with `flock` for the job's life (a lock on its
own open file description, so two jobs in one process exclude each other too, and a killed process lets go). Only
then is each port checked to be bindable; ports that foreign processes hold are skipped. A foreign process can
still take a port between the check and the trainer's bind; the caller retries with another range then.
"""

from __future__ import annotations

import errno
import fcntl
import os
import socket
from dataclasses import dataclass, field
from pathlib import Path

from .. import settings
from ..errors import UserError

DEFAULT_BASE_PORT = 5005  # ML-Agents' default


def lock_dir() -> Path:
    path = settings.port_lock_dir()
    try:
        path.mkdir(mode=0o1777, parents=True, exist_ok=True)
    except OSError as exc:
        raise UserError(f"cannot create the port lock directory {path}: {exc}",
                        hint=f"set {settings.PORT_LOCK_DIR} to a writable directory shared by this host's jobs",
                        ) from None
    return path


def _bindable(port: int) -> bool:
    """Whether a plain bind succeeds, as ML-Agents checks before it listens (IPv4 and, where present, IPv6)."""
    for family, host in ((socket.AF_INET, ""), (socket.AF_INET6, "::")):
        try:
            with socket.socket(family, socket.SOCK_STREAM) as s:
                if family == socket.AF_INET6:
                    s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
                s.bind((host, port))
        except OSError as exc:
            if family == socket.AF_INET6 and exc.errno in (errno.EAFNOSUPPORT, errno.EADDRNOTAVAIL):
                continue  # no IPv6 on this host
            return False
    return True


@dataclass
class PortReservation:
    """`count` consecutive ports from `base`, held until `release()` (or the process ends)."""

    base: int
    count: int
    _fds: list[int] = field(default_factory=list, repr=False)

    @property
    def ports(self) -> range:
        return range(self.base, self.base + self.count)

    def release(self) -> None:
        for fd in self._fds:
            os.close(fd)  # closing the description drops its flock
        self._fds.clear()

    def __enter__(self) -> PortReservation:
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()


def _lock(directory: Path, port: int) -> int | None:
    fd = os.open(directory / f"{port}.lock", os.O_RDONLY | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        return None
    return fd


def reserve_ports(count: int, start: int = DEFAULT_BASE_PORT, stop: int = 60000,
                  avoid: frozenset[int] = frozenset()) -> PortReservation:
    """The lowest range of `count` ports from `start` that is neither reserved by another job nor in use."""
    directory = lock_dir()
    base = start
    while base + count <= stop:
        held: list[int] = []
        next_base = None
        for port in range(base, base + count):
            fd = None if port in avoid else _lock(directory, port)
            if fd is None or not _bindable(port):
                if fd is not None:
                    os.close(fd)
                next_base = port + 1
                break
            held.append(fd)
        if next_base is None:
            return PortReservation(base, count, held)
        for fd in held:
            os.close(fd)
        base = next_base
    raise UserError(f"no {count} consecutive free ports between {start} and {stop} for the trainer",
                    hint="stop other trainers on this host, or lower num_envs")
