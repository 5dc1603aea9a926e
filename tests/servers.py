"""Real servers for tests and benchmarks, on 127.0.0.1 and on ports nobody else holds: PostgreSQL from Debian's
packages, a Ray cluster of several nodes, the GCS emulator."""

from __future__ import annotations

import glob
import os
import shutil
import signal
import socket
import struct
import subprocess
import tempfile
import threading
import time
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


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:  # a zombie has exited: only its parent's wait is missing
        return Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0] != "Z"
    except OSError:
        return False


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

    def kill(self) -> None:
        """kill -9 the server and every backend at once (a machine or container that dies), no shutdown."""
        pid = int((self.dir / "data" / "postmaster.pid").read_text().split()[0])
        children = subprocess.run(["pgrep", "-P", str(pid)], capture_output=True, text=True).stdout.split()
        for p in [pid, *map(int, children)]:
            try:
                os.kill(p, signal.SIGKILL)
            except ProcessLookupError:
                pass
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and any(_alive(p) for p in [pid, *map(int, children)]):
            time.sleep(0.05)

    def restart(self) -> None:
        """Start it again on the same data and port (crash recovery replays its WAL). A postmaster killed a moment
        ago may still be a zombie its reaper has not collected, which the new one takes for a live server holding
        the data directory: it waits for that pid to be gone."""
        pid = int((self.dir / "data" / "postmaster.pid").read_text().split()[0])
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                os.kill(pid, 0)
            except ProcessLookupError:
                break
            time.sleep(0.05)
        done = self._run(str(self.bin / "pg_ctl"), "-D", str(self.dir / "data"), "-l", str(self.dir / "log"), "-w",
                         "start", "-o", f"-p {self.port} -k {self.dir} -c listen_addresses=127.0.0.1 -c fsync=off "
                                        "-c max_connections=200")
        if done.returncode:
            log = (self.dir / "log").read_text()[-1000:]
            raise RuntimeError(f"PostgreSQL did not restart: {done.stderr[-1000:]} {log}")

    def stop(self) -> None:
        self._run(str(self.bin / "pg_ctl"), "-D", str(self.dir / "data"), "-m", "immediate", "stop")
        shutil.rmtree(self.dir, ignore_errors=True)


# A throwaway cluster on loopback: no usage stats, and no token authentication — Ray turns it on by itself once a
# token file exists in ~/.ray (any earlier `ray.init()` may leave one), and the nodes and drivers of a test must not
# depend on that. Drivers of these clusters set the same (`RAY_ENV` in their environment).
RAY_ENV = {"RAY_USAGE_STATS_ENABLED": "0", "RAY_AUTH_MODE": "disabled"}
# Every node and driver on 127.0.0.1 only (see tests/ray_node.py): drivers take 127.0.0.1 as their node address.
RAY_DRIVER_ENV = {**RAY_ENV, "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0"}
RAY_NODE = str(Path(__file__).with_name("ray_node.py"))


def drive_loopback_clusters() -> None:
    """Make this process a driver of clusters on 127.0.0.1 (before or after Ray's import)."""
    os.environ.update(RAY_DRIVER_ENV)
    import ray._private.ray_constants as constants

    constants.ENABLE_RAY_CLUSTER = False  # read at import from the variable above; imported already in pytest


class RayCluster:
    """A real Ray cluster on 127.0.0.1: a head node and workers, each `ray start --block` in its own process group,
    so one node can be killed -9 and the cluster stopped without `ray stop` (which would stop every Ray process on
    the machine, other jobs' included). Each node may get its own environment (its own scratch workspace)."""

    def __init__(self, python: str) -> None:
        self.python = python
        self.temp = tempfile.mkdtemp(prefix="rt", dir="/tmp")  # Ray's socket paths must stay short
        self.nodes: list[subprocess.Popen] = []
        self.address = ""

    def _start(self, args: list[str], cpus: int, env: dict[str, str] | None) -> subprocess.Popen:
        log = open(Path(self.temp) / f"node{len(self.nodes)}.log", "w")  # noqa: SIM115
        node_env = {k: v for k, v in os.environ.items() if k != "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"}
        proc = subprocess.Popen([self.python, RAY_NODE, "start", "--block", "--node-ip-address=127.0.0.1",
                                 f"--num-cpus={cpus}", "--disable-usage-stats", *args],
                                stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
                                env={**node_env, **RAY_ENV, **(env or {}),
                                     "RAY_TEST_NODE": f"{self.temp}/{len(self.nodes)}"})
        self.nodes.append(proc)
        return proc

    def start(self, nodes: int = 2, cpus: int = 1, env: list[dict[str, str]] | None = None,
              gpus: list[int] | None = None) -> RayCluster:
        """`gpus`: the logical GPUs each node declares (Ray schedules on them like real ones)."""
        envs = env or [{}] * nodes
        extra = [[f"--num-gpus={n}"] for n in gpus] if gpus else [[]] * nodes
        for _ in range(3):  # a port is only probed: another process may take it first
            port = free_port()
            self._start(["--head", f"--port={port}", "--include-dashboard=false", f"--temp-dir={self.temp}",
                         *extra[0]], cpus, envs[0])
            self.address = f"127.0.0.1:{port}"
            if self.wait_nodes(1):
                break
            self.stop()
        else:
            raise RuntimeError("the Ray head node did not start: see " + self.temp)
        for i in range(1, nodes):
            self._start([f"--address={self.address}", *extra[i]], cpus, envs[i])
        if not self.wait_nodes(nodes):
            raise RuntimeError(f"the Ray worker nodes did not join: see {self.temp}")
        return self

    def wait_nodes(self, n: int, timeout: float = 300) -> bool:
        import time

        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            out = subprocess.run([self.python, "-c", (
                "import ray,sys; ray.init(address=sys.argv[1], logging_level='ERROR');"
                "print(sum(1 for x in ray.nodes() if x['Alive']))"), self.address],
                capture_output=True, text=True, timeout=60, env={**os.environ, **RAY_DRIVER_ENV})
            if out.returncode == 0 and out.stdout.strip().isdigit() and int(out.stdout.strip()) >= n:
                return True
            if any(p.poll() is not None for p in self.nodes):
                return False
            time.sleep(1)
        return False

    def processes(self, index: int | None = None) -> list[int]:
        """Every process started with a node's environment (all nodes' when `index` is None): Ray's workers may
        leave the node's process group."""
        marker = f"RAY_TEST_NODE={self.temp}/{'' if index is None else index}".encode()
        found = []
        for entry in Path("/proc").iterdir():
            try:
                if entry.name.isdigit() and any(
                        v == marker or (index is None and v.startswith(marker))
                        for v in (entry / "environ").read_bytes().split(b"\0")):
                    found.append(int(entry.name))
            except OSError:
                continue
        return found

    def sockets(self, extra_pids: tuple[int, ...] = ()) -> set[tuple[str, str, str]]:
        """(process, local address, remote address) of every inet socket the cluster's processes (and `extra_pids`,
        e.g. the driver) hold now."""
        import psutil

        found = set()
        for pid in [*self.processes(), *extra_pids]:
            try:
                proc = psutil.Process(pid)
                for conn in proc.net_connections(kind="inet"):
                    found.add((proc.name(), conn.laddr.ip if conn.laddr else "",
                               conn.raddr.ip if conn.raddr else ""))
            except (psutil.NoSuchProcess, psutil.AccessDenied):
                continue
        return found

    def kill(self, index: int) -> None:
        """The node is lost: SIGKILL to its process group and to every process started with its environment (one
        outliving its raylet for seconds could finish a job a lost machine cannot)."""
        os.killpg(self.nodes[index].pid, signal.SIGKILL)
        for pid in self.processes(index):
            try:
                os.kill(pid, signal.SIGKILL)
            except OSError:
                continue

    def stop(self) -> None:
        for proc in self.nodes:
            try:
                os.killpg(proc.pid, signal.SIGTERM)
            except ProcessLookupError:
                continue
        deadline = time.monotonic() + 5  # a throwaway cluster: a node slow to stop is killed (its files go too)
        for proc in self.nodes:
            try:
                proc.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(10)
        self.nodes = []

    def remove(self) -> None:
        self.stop()
        shutil.rmtree(self.temp, ignore_errors=True)


class GCSEmulator:
    """gcp-storage-emulator in this process (in memory) with one bucket; `host` is its STORAGE_EMULATOR_HOST."""

    def __init__(self, bucket: str = "unity-models") -> None:
        from gcp_storage_emulator.server import create_server

        self.server = create_server("127.0.0.1", 0, in_memory=True, default_bucket=bucket)
        self.server.start()
        self.host = f"http://127.0.0.1:{self.server._api._httpd.server_address[1]}"

    def stop(self) -> None:
        self.server.stop()


def interruptible_jobs(workspace: Path, store, max_steps: int) -> list[str]:
    """Jobs a node is training (in its own `workspace`) that have a complete checkpoint in the artifact store and at
    least half their steps to go: killing the node now interrupts them for certain, however slow the machine."""
    import json
    import re

    out = []
    for d in workspace.iterdir() if workspace.is_dir() else []:
        state = d / "state.json"
        if not (state.is_file() and json.loads(state.read_text()).get("phase") == "running"):
            continue
        stored = store.sizes(f"runs/{d.name}/training")
        steps = [int(m.group(1)) for k in stored if (m := re.search(r"-(\d+)\.pt$", k))]
        if any(k.endswith("/checkpoint.pt") for k in stored) and steps and max(steps) <= max_steps // 2:
            out.append(d.name)
    return out


class OutageProxy:
    """A TCP forwarder on a loopback port it holds for its whole life, in front of a server: `down()` makes every
    connection, new or open, fail at once (a bucket unreachable) until `up()`. No port is ever released and taken
    back, so no other process can take it in between."""

    def __init__(self, target_port: int) -> None:
        self.target = ("127.0.0.1", target_port)
        self.listener = socket.socket()
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen(64)
        self.port = self.listener.getsockname()[1]
        self.available = True
        self.refused = 0
        self._open: set[socket.socket] = set()
        self._lock = threading.Lock()
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            if not self.available:
                self.refused += 1
                client.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))  # a reset
                client.close()
                continue
            try:
                upstream = socket.create_connection(self.target)
            except OSError:
                client.close()
                continue
            with self._lock:
                self._open |= {client, upstream}
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pipe, args=(a, b), daemon=True).start()

    def _pipe(self, src: socket.socket, dst: socket.socket) -> None:
        try:
            while data := src.recv(65536):
                dst.sendall(data)
        except OSError:
            pass
        finally:
            for s in (src, dst):
                with self._lock:
                    self._open.discard(s)
                try:
                    s.close()
                except OSError:
                    pass

    def down(self) -> None:
        self.available = False
        with self._lock:
            for s in list(self._open):
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass

    def up(self) -> None:
        self.available = True

    def close(self) -> None:
        self.listener.close()
        self.down()
