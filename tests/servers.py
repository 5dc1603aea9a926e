"""Real servers for tests, on 127.0.0.1 and on ports nobody else holds: PostgreSQL from Debian's packages."""

from __future__ import annotations

import glob
import os
import shutil
import socket
import subprocess
import tempfile
import uuid
from pathlib import Path

INSTALL = "apt-get install -y postgresql (make test does it)"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _binaries() -> Path:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    if not found:
        raise RuntimeError(f"PostgreSQL is not installed: {INSTALL}")
    return Path(found[-1]).parent


class Postgres:
    """A throwaway PostgreSQL cluster owned by the `postgres` user (the server refuses to run as root), listening on
    127.0.0.1 only, with trust authentication, in its own scratch directory. Each test gets its own database."""

    def __init__(self) -> None:
        self.bin = _binaries()
        self.dir = Path(tempfile.mkdtemp(prefix="unity-mlops-pg-"))
        self.port = 0
        self._as_postgres = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
        if self._as_postgres:
            shutil.chown(self.dir, "postgres")

    def _run(self, *cmd: str) -> subprocess.CompletedProcess:
        return subprocess.run([*self._as_postgres, *cmd], capture_output=True, text=True, timeout=120)

    def start(self) -> Postgres:
        data = self.dir / "data"
        done = self._run(str(self.bin / "initdb"), "-D", str(data), "-A", "trust", "-U", "postgres", "--no-sync")
        if done.returncode:
            raise RuntimeError(f"initdb failed: {done.stderr[-2000:]}")
        for _ in range(10):  # another process may take the port between our probe and the server's bind
            self.port = free_port()
            done = self._run(str(self.bin / "pg_ctl"), "-D", str(data), "-l", str(self.dir / "log"), "-w", "start",
                             "-o", f"-p {self.port} -k {self.dir} -c listen_addresses=127.0.0.1 -c fsync=off "
                                   "-c max_connections=200")
            if done.returncode == 0:
                return self
        raise RuntimeError(f"PostgreSQL did not start: {done.stderr[-1000:]} {(self.dir / 'log').read_text()[-2000:]}")

    @property
    def url(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    def create_database(self) -> str:
        import psycopg

        name = f"t_{uuid.uuid4().hex[:16]}"
        with psycopg.connect(self.url, autocommit=True) as conn:
            conn.execute(f"CREATE DATABASE {name}")
        return f"postgresql://postgres@127.0.0.1:{self.port}/{name}"

    def stop(self) -> None:
        self._run(str(self.bin / "pg_ctl"), "-D", str(self.dir / "data"), "-m", "immediate", "stop")
        shutil.rmtree(self.dir, ignore_errors=True)
