"""Chaos harness: attacks the 24/7 promises with real processes and prints one table.

Three scenarios, each against the real product (CLI processes, the real scheduler, real trainers):

* **kill** — N trials of `kill -9` of a running `unity-mlops schedule run` at a point drawn (seeded) from: after
  generate, after build, during training (after a checkpoint), after training (before evaluation), between the
  registry commit and the job's state update, between the job's end and the scheduler's record of it, and after
  completion. Each trial triggers one run
  (fast trainer), kills the scheduler there, restarts it, and waits for the run to finish. Counts lost runs,
  duplicate runs (a run that trained anew or announced `job.completed` under two ids), duplicate registry versions,
  and whether every kill during training resumed from its checkpoint. Exact points use the product's failpoints
  (`mlops_unity_pipeline/failpoints.py`); the training kill lands at a random moment after a checkpoint exists.
* **outage** — a webhook receiver on 127.0.0.1 is down for `--outage` seconds while events are emitted; `--senders`
  sender processes share the outbox (as the scheduler, a `webhooks replay --send` and CronJob pods would). Counts
  the events delivered after it comes back and the `webhook-id`s the receiver got twice.
* **ports** — `--mlagents-jobs` `unity-mlops train` processes with the real ML-Agents trainer start at the same
  instant, while a *port thief* binds the first port a job reserves before its trainer can. Counts jobs that failed
  on a port, and the retries on another range.

    python bench/chaos.py [--kills 20] [--outage 600] [--mlagents-jobs 4] [--senders 3] [--events 20]
                          [--retry-schedule default|S1,S2,...] [--only kill,outage,ports] [--json FILE]

With the default retry schedule (5 s, 5 min, 30 min, ...) a 10-minute outage takes up to ~40 minutes to drain:
events that failed their third attempt during the outage wait 30 minutes for the fourth. Exit status 0 when every
promise held.
"""

from __future__ import annotations

import argparse
import fcntl
import json
import os
import random
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

POINTS = ("generate", "build", "train", "trained", "registered", "finished", "after")


def cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "mlops_unity_pipeline", *args]


def wait_for(predicate, timeout: float, what: str, proc: subprocess.Popen | None = None):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"process exited ({proc.returncode}) while waiting for {what}")
        time.sleep(0.1)
    raise RuntimeError(f"timed out after {timeout:.0f} s waiting for {what}")


# ---------------------------------------------------------------------------------------------------- receiver
class Receiver:
    """Records every webhook-id it accepts; can be taken down and brought back on the same port."""

    def __init__(self) -> None:
        self.ids: list[str] = []
        self.bodies: list[dict] = []
        self.lock = threading.Lock()
        self.server: ThreadingHTTPServer | None = None
        self.port = 0

    def _handler(self):
        rx = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802
                body = self.rfile.read(int(self.headers.get("content-length", 0)))
                with rx.lock:
                    rx.ids.append(self.headers.get("webhook-id", ""))
                    try:
                        rx.bodies.append(json.loads(body))
                    except ValueError:
                        rx.bodies.append({})
                self.send_response(204)
                self.end_headers()

            def log_message(self, *a):
                pass

        return Handler

    def up(self) -> None:
        ThreadingHTTPServer.allow_reuse_address = True
        deadline = time.monotonic() + 30
        while True:
            try:
                self.server = ThreadingHTTPServer(("127.0.0.1", self.port), self._handler())
                break
            except OSError:  # the port we had may be briefly held by someone else: say so if it stays taken
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.5)
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def down(self) -> None:
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()
            self.server = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hooks"

    def duplicates(self) -> int:
        with self.lock:
            return len(self.ids) - len(set(self.ids))


# ---------------------------------------------------------------------------------------------------- kill -9
SCHEDULER_CONFIG = """
workspace: {ws}
poll_interval_s: 0.2
grace_period_s: 30
webhooks:
  - {{url: "{url}", name: chaos-receiver}}
schedules:
  - schedule_id: chaos
    cron_expression: "0 0 1 1 *"
    max_retries: 2
    retry_backoff_s: 1
    overlap_policy: queue
    asset_specs:
      - {{asset_id: nav, name: ChaosAgent, description: "reach the target while avoiding obstacles"}}
    rl_config:
      trainer: fast
      max_steps: {steps}
      checkpoint_interval: 4000
      summary_freq: 4000
      hyperparameters: {{buffer_size: 2048, batch_size: 512}}
"""


def _run_status(state_db: Path, job_id: str) -> str | None:
    try:
        with sqlite3.connect(state_db, timeout=30) as conn:
            row = conn.execute("SELECT status FROM runs WHERE job_id=?", (job_id,)).fetchone()
        return row[0] if row else None
    except sqlite3.Error:
        return None


def _finished(state_db: Path, job_id: str) -> str | None:
    status = _run_status(state_db, job_id)
    return status if status in ("completed", "failed") else None


def _checkpoint_steps(job_dir: Path) -> list[int]:
    return sorted(int(p.stem.rsplit("-", 1)[1]) for p in job_dir.glob("training/*/ChaosAgent/ChaosAgent-*.onnx")
                  if p.stem.rsplit("-", 1)[1].isdigit())


def scenario_kill(tmp: Path, trials: int, steps: int, rng: random.Random, log) -> dict:
    rx = Receiver()
    rx.up()
    ws = tmp / "kill" / "runs"
    ws.mkdir(parents=True)
    cfg = tmp / "kill" / "scheduler.yaml"
    cfg.write_text(SCHEDULER_CONFIG.format(ws=ws, url=rx.url, steps=steps))
    state_db = ws / "_state" / "scheduler.db"
    marker = tmp / "kill" / "failpoint"
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    sched_log = (tmp / "kill" / "scheduler.log").open("a")
    points = [POINTS[i % len(POINTS)] for i in range(trials)]
    rng.shuffle(points)
    trials_out = []

    def start(extra: dict[str, str]) -> subprocess.Popen:
        return subprocess.Popen(cli("schedule", "run", str(cfg)), stdout=sched_log, stderr=subprocess.STDOUT,
                                env={**env, **extra}, cwd=tmp)

    try:
        for i, point in enumerate(points):
            out = subprocess.run(cli("schedule", "trigger", str(cfg), "chaos"), capture_output=True, text=True,
                                 env=env, cwd=tmp, timeout=120)
            if out.returncode != 0:
                raise RuntimeError(f"trigger failed: {out.stderr}")
            job_id = out.stdout.split()[-1]
            job_dir = ws / job_id
            marker.unlink(missing_ok=True)
            extra = {} if point in ("train", "after") else {"UNITY_MLOPS_FAILPOINT": point,
                                                           "UNITY_MLOPS_FAILPOINT_FILE": str(marker)}
            proc = start(extra)
            if point == "train":
                wait_for(lambda d=job_dir: (d / "state.json").exists() and _checkpoint_steps(d), 300,
                         f"a checkpoint of {job_id}", proc)
                time.sleep(rng.uniform(0, 0.3))
            elif point == "after":
                wait_for(lambda j=job_id: _run_status(state_db, j) == "completed", 300, f"{job_id} to complete", proc)
            else:
                wait_for(marker.exists, 300, f"failpoint {point}", proc)
            proc.send_signal(signal.SIGKILL)
            proc.wait(timeout=60)
            state = json.loads((job_dir / "state.json").read_text()) if (job_dir / "state.json").exists() else {}
            ckpts = _checkpoint_steps(job_dir)
            in_training = state.get("phase") == "running" and bool(ckpts)
            proc = start({})
            try:
                final = wait_for(lambda j=job_id: _finished(state_db, j), 300, f"{job_id} to finish after the restart",
                                 proc)
            finally:
                proc.send_signal(signal.SIGTERM)
                proc.wait(timeout=120)
            result = json.loads((job_dir / "result.json").read_text())
            resumed = (result.get("metrics") or {}).get("training", {}).get("resumed_from_step")
            after = json.loads((job_dir / "state.json").read_text())
            trials_out.append({"trial": i + 1, "point": point, "job_id": job_id, "phase_at_kill": state.get("phase"),
                               "trainings_completed": [p for p, _ in after.get("transitions", [])].count("trained"),
                               "checkpoint_at_kill": max(ckpts) if ckpts else None, "in_training": in_training,
                               "final": final, "resumed_from_step": resumed,
                               "attempt": after.get("attempt")})
            log(f"  kill {i + 1:2d}/{trials} at {point:10} phase {state.get('phase') or '-':10} -> {final}"
                + (f", resumed from step {resumed}" if in_training else ""))
        # what the restarted schedulers still had to send is sent by the next scheduler to run, as in production:
        # a message whose sender was killed mid-post stays leased to the dead process until the lease expires
        # (3 x timeout + 30 s), longer than a trial's scheduler lives
        outbox = ws / "_state" / "webhooks.db"
        proc = start({})
        try:
            wait_for(lambda: _pending(outbox) == 0, 240, f"the outbox to drain ({_leases(outbox)})", proc)
        finally:
            proc.send_signal(signal.SIGTERM)
            proc.wait(timeout=120)
    finally:
        rx.down()
        sched_log.close()
    from mlops_unity_pipeline.registry.local import LocalModelRegistry

    versions = LocalModelRegistry(ws / "_registry").list()
    by_job: dict[str, int] = {}
    for v in versions:
        by_job[v.job_id] = by_job.get(v.job_id, 0) + 1
    completed_ids: dict[str, set[str]] = {}
    for wid, body in zip(rx.ids, rx.bodies, strict=True):
        if body.get("type") == "job.completed":
            completed_ids.setdefault(body["data"]["job_id"], set()).add(wid)
    train_kills = [t for t in trials_out if t["in_training"]]
    return {
        "trials": trials_out,
        "runs": len(trials_out),
        "lost_runs": sum(t["final"] != "completed" for t in trials_out),
        "duplicate_runs": sum(max(len(completed_ids.get(t["job_id"], ())) - 1, (t["attempt"] or 1) - 1)
                              for t in trials_out),
        "duplicate_versions": sum(n - 1 for n in by_job.values()),
        "trained_twice": sum(t["trainings_completed"] > 1 for t in trials_out),
        "versions": len(versions),
        "train_kills": len(train_kills),
        "train_kills_resumed": sum(bool(t["resumed_from_step"]) for t in train_kills),
        "completed_events_received": sum(len(s) for s in completed_ids.values()),
    }


def _leases(outbox: Path) -> str:
    """The pending deliveries, for a message that says why the outbox did not drain."""
    try:
        with sqlite3.connect(outbox, timeout=30) as conn:
            return str(conn.execute("SELECT event_type, attempts, next_attempt, lease_owner, lease_until FROM "
                                    "deliveries WHERE status='pending'").fetchall())
    except sqlite3.Error as exc:
        return str(exc)


def _pending(outbox: Path) -> int:
    try:
        with sqlite3.connect(outbox, timeout=30) as conn:
            return conn.execute("SELECT COUNT(*) FROM deliveries WHERE status='pending'").fetchone()[0]
    except sqlite3.Error:
        return 1


# ---------------------------------------------------------------------------------------------------- outage
def _sender_main(args: argparse.Namespace) -> None:
    """One sender process: the product's outbox sender thread, until the stop file appears."""
    from mlops_unity_pipeline.webhooks import Endpoint, WebhookOutbox

    box = WebhookOutbox(Path(args.db), [Endpoint(args.url, name="rx")], retry_schedule_s=tuple(args.schedule))
    box.start()
    while not Path(args.stop).exists():
        time.sleep(0.2)
    box.close(0)


def scenario_outage(tmp: Path, outage_s: float, events: int, senders: int, schedule: tuple[float, ...],
                    log) -> dict:
    from mlops_unity_pipeline.webhooks import Endpoint, WebhookOutbox

    d = tmp / "outage"
    d.mkdir(parents=True)
    db, stop = d / "webhooks.db", d / "stop"
    rx = Receiver()
    rx.up()  # take a port, then go down: the outage
    rx.down()
    producer = WebhookOutbox(db, [Endpoint(rx.url, name="rx")], retry_schedule_s=schedule)
    sender_log = (d / "senders.log").open("w")
    procs = [subprocess.Popen([sys.executable, __file__, "--role", "sender", "--db", str(db), "--url", rx.url,
                               "--stop", str(stop), "--schedule", ",".join(map(str, schedule))], cwd=tmp,
                              stdout=sender_log, stderr=subprocess.STDOUT)
             for _ in range(senders)]
    t0 = time.monotonic()
    emitted = []
    try:
        for i in range(events):  # spread over the outage
            wait = t0 + outage_s * i / max(events, 1) - time.monotonic()
            if wait > 0:
                time.sleep(wait)
            emitted.append(producer.emit("job.completed", {"job_id": f"outage-{i}", "asset_id": "a",
                                                           "model_version": None}))
        time.sleep(max(0.0, t0 + outage_s - time.monotonic()))
        rx.up()
        back = time.monotonic()
        log(f"  receiver back after {back - t0:.0f} s; {events} events emitted while it was down")
        bound = _drain_bound(outage_s, events, schedule)
        delivered_at = None
        while time.monotonic() - t0 < bound:
            counts = producer.counts()
            if counts.get("delivered", 0) == events:
                delivered_at = time.monotonic()
                break
            if counts.get("pending", 0) == 0:
                break  # some went dead: nothing more will come
            time.sleep(0.5)
    finally:
        stop.write_text("stop")
        for p in procs:
            p.wait(timeout=60)
        sender_log.close()
        rx.down()
    counts = producer.counts()
    return {"events": events, "delivered": counts.get("delivered", 0), "dead": counts.get("dead", 0),
            "outage_s": outage_s, "senders": senders,
            "received": len(rx.ids), "duplicate_ids": rx.duplicates(),
            "drained_after_s": round(delivered_at - back, 1) if delivered_at else None,
            "missing": sorted(set(emitted) - set(rx.ids))}


def _drain_bound(outage_s: float, events: int, schedule: tuple[float, ...]) -> float:
    """When the last event's first attempt after the outage is due (with maximal jitter), plus a margin."""
    from mlops_unity_pipeline.webhooks.outbox import JITTER

    latest = 0.0
    for i in range(events):
        t = outage_s * i / max(events, 1)
        for delay in (0.0, *schedule):
            t += delay * (1 + JITTER)
            if t >= outage_s:
                break
        latest = max(latest, t)
    return latest + 60


# ---------------------------------------------------------------------------------------------------- ports
JOB = """
job_id: port-{i}
asset_spec: {{asset_id: port-{i}, name: PortAgent{i}, description: reach the target}}
rl_config:
  max_steps: {steps}
  summary_freq: 1000
  checkpoint_interval: 2000
  agents_per_env: 8
  hyperparameters: {{buffer_size: 512, batch_size: 128}}
"""


def _port_thief(lock_dir: Path, stop: threading.Event, stolen: list[int]) -> None:
    """Bind the first port a job reserves, before its trainer can: the foreign process ML-Agents must survive."""
    while not stop.is_set() and not stolen:
        for lock in sorted(lock_dir.glob("*.lock")):
            fd = os.open(lock, os.O_RDONLY)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                fcntl.flock(fd, fcntl.LOCK_UN)
                continue  # nobody holds it
            except BlockingIOError:
                port = int(lock.stem)
            finally:
                os.close(fd)
            s = socket.socket()
            try:
                s.bind(("127.0.0.1", port))
                s.listen()
            except OSError:
                s.close()
                continue
            stolen.append(port)
            stop.wait()
            s.close()
            return
        time.sleep(0.01)


def scenario_ports(tmp: Path, jobs: int, steps: int, log) -> dict:
    d = tmp / "ports"
    d.mkdir(parents=True)
    lock_dir = d / "locks"  # this harness's jobs coordinate here; the rest of the host is foreign to them
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "UNITY_MLOPS_PORT_LOCK_DIR": str(lock_dir)}
    files = []
    for i in range(jobs):
        f = d / f"job{i}.yaml"
        f.write_text(JOB.format(i=i, steps=steps))
        files.append(f)
    lock_dir.mkdir()
    stop, stolen = threading.Event(), []
    thief = threading.Thread(target=_port_thief, args=(lock_dir, stop, stolen), daemon=True)
    thief.start()
    procs = [subprocess.Popen(cli("train", str(f), "--workspace", str(d / "runs"), "-q", "--episodes", "50"),
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env, cwd=d)
             for f in files]  # all at once
    outs = [p.communicate(timeout=1800)[0] for p in procs]
    stop.set()
    thief.join(timeout=10)
    failed_on_port, failed_other, retries = 0, 0, 0
    for i, (p, out) in enumerate(zip(procs, outs, strict=True)):
        logs = d / "runs" / f"port-{i}" / "logs"
        trainer = (logs / "trainer.log").read_text(errors="replace") if (logs / "trainer.log").exists() else ""
        pipeline = (logs / "pipeline.log").read_text(errors="replace") if (logs / "pipeline.log").exists() else ""
        retries += pipeline.count("was taken by another process")
        if p.returncode != 0:
            if "UnityWorkerInUseException" in trainer or "worker number" in out:
                failed_on_port += 1
            else:
                failed_other += 1
                log(f"  job {i} failed (not a port):\n{out[-1500:]}")
    log(f"  {jobs} ML-Agents jobs started at once; the thief took port {stolen[0] if stolen else '-'}")
    return {"jobs": jobs, "completed": sum(p.returncode == 0 for p in procs), "port_failures": failed_on_port,
            "other_failures": failed_other, "port_retries": retries, "stolen_port": stolen[0] if stolen else None}


# ---------------------------------------------------------------------------------------------------- main
# ---------------------------------------------------------------------------------------------------- database
DATABASE_CONFIG = """
workspace: {ws}
database: {url}
poll_interval_s: 0.3
webhooks:
  - {{url: "{hook}", name: chaos-receiver}}
schedules:
  - schedule_id: chaos-db
    cron_expression: "0 0 1 1 *"
    max_retries: 8
    retry_backoff_s: 1
    overlap_policy: queue
    asset_specs:
      - {{asset_id: dbnav, name: ChaosDbAgent, description: "reach the target while avoiding obstacles"}}
    rl_config:
      trainer: fast
      max_steps: 12000
      checkpoint_interval: 4000
      summary_freq: 4000
      hyperparameters: {{buffer_size: 2048, batch_size: 512}}
"""


def scenario_database(tmp: Path, runs: int, restarts: int, rng: random.Random, log) -> dict:
    """PostgreSQL (the server and every backend) killed -9 and restarted `restarts` times while a scheduler on it
    runs `runs` scheduled jobs that train and register, and sends their lifecycle events to a webhook receiver (the
    outbox lives in that database: events published while it is down are spooled and sent when it is back)."""
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
    import psycopg

    from mlops_unity_pipeline.store import open_database
    from servers import Postgres

    def statuses() -> list[tuple[str, str]]:
        try:
            with psycopg.connect(url, connect_timeout=5) as conn:
                return conn.execute("SELECT run_key, status FROM runs ORDER BY run_key").fetchall()
        except psycopg.OperationalError:
            return []

    d = tmp / "database"
    ws = d / "runs"
    ws.mkdir(parents=True)
    pg = Postgres().start()
    rx = Receiver()
    rx.up()

    def completions() -> set[str]:  # the runs whose job.completed reached the receiver
        with rx.lock:
            return {b.get("data", {}).get("job_id") for b in rx.bodies if b.get("type") == "job.completed"}

    try:
        url = pg.create_database()
        open_database(url).upgrade()
        cfg = d / "scheduler.yaml"
        cfg.write_text(DATABASE_CONFIG.format(ws=ws, url=url, hook=rx.url))
        env = {**os.environ, "PYTHONUNBUFFERED": "1", "UNITY_MLOPS_DATABASE_URL": url}
        for _ in range(runs):
            out = subprocess.run(cli("schedule", "trigger", str(cfg), "chaos-db"), capture_output=True, text=True,
                                 env=env, timeout=120)
            if out.returncode != 0:
                raise RuntimeError(f"trigger failed: {out.stderr}")
            time.sleep(1.05)  # one manual slot per second
        sched_log = (d / "scheduler.log").open("w")
        proc = subprocess.Popen(cli("schedule", "run", str(cfg)), stdout=sched_log, stderr=subprocess.STDOUT,
                                env=env)
        t0 = time.monotonic()
        try:
            for k in range(restarts):
                wait_for(lambda: any(s == "running" for _, s in statuses()), 300, "a running job", proc)
                time.sleep(rng.uniform(0.2, 2.0))
                pg.kill()
                time.sleep(3.0)
                pg.restart()
                log(f"  database restart {k + 1}/{restarts}: "
                    f"{sum(s == 'completed' for _, s in statuses())}/{runs} runs completed so far")
            wait_for(lambda: len(st := statuses()) == runs and all(s in ("completed", "failed") for _, s in st),
                     900, "every run to finish", proc)
            alive = proc.poll() is None
            done = sum(s == "completed" for _, s in statuses())
            try:  # the outbox's sender: queued and spooled events go out within seconds
                wait_for(lambda: len(completions()) >= done, 120, "every job.completed webhook", proc)
            except RuntimeError as exc:
                log(f"  {exc}")
        finally:
            proc.send_signal(signal.SIGTERM)
            code = proc.wait(timeout=120)
            sched_log.close()
        elapsed = time.monotonic() - t0
        final = statuses()
        with psycopg.connect(url) as conn:
            versions = conn.execute("SELECT run_key, version FROM versions").fetchall()
        per_run: dict[str, int] = {}
        for key, _ in versions:
            per_run[key] = per_run.get(key, 0) + 1
        missing = sum(not any((ws / "_registry" / "models" / v).glob("*.onnx")) for _, v in versions)
        text = (d / "scheduler.log").read_text()
    finally:
        pg.stop()
        rx.down()
    return {"runs": runs, "restarts": restarts, "completed": sum(s == "completed" for _, s in final),
            "lost_runs": runs - sum(s == "completed" for _, s in final),
            "duplicate_versions": sum(n - 1 for n in per_run.values()), "versions": len(versions),
            "missing_models": missing, "scheduler_alive": alive, "scheduler_exit": code,
            "lock_lost": "another scheduler took over" in text,
            "waits_logged": text.count("state store unavailable"), "elapsed_s": round(elapsed, 1),
            "events_spooled": text.count("until the outbox's database is back"),
            "completions_delivered": len(completions() - {None}),
            "webhook_duplicates": rx.duplicates()}


# ---------------------------------------------------------------------------------------------------- bucket
def scenario_bucket(tmp: Path, outage_s: float, log) -> dict:
    """The artifact bucket unreachable (every connection reset, by a proxy held in front of the GCS emulator) for
    `outage_s` seconds from a job's first stored checkpoint: its later checkpoints, its model's blobs and its files
    must still all land, the job complete and register once."""
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
    from mlops_unity_pipeline import RLTrainingConfig, TrainingJob, UnityAssetSpec, UnityMLOpsOrchestrator
    from mlops_unity_pipeline.artifacts import open_artifacts
    from mlops_unity_pipeline.registry.local import LocalModelRegistry
    from servers import GCSEmulator, OutageProxy

    emulator = GCSEmulator()
    proxy = OutageProxy(int(emulator.host.rsplit(":", 1)[1]))
    before = os.environ.get("STORAGE_EMULATOR_HOST")
    os.environ["STORAGE_EMULATOR_HOST"] = f"http://127.0.0.1:{proxy.port}"
    bucket = "gs://unity-models/chaos"
    ws = tmp / "bucket" / "runs"
    try:
        store = open_artifacts(bucket)
        orch = UnityMLOpsOrchestrator(ws, evaluation_episodes=50, show_progress=False, artifacts=bucket)
        cfg = RLTrainingConfig(trainer="fast", max_steps=60_000, checkpoint_interval=4_000, summary_freq=4_000,
                               hyperparameters={"buffer_size": 2048, "batch_size": 512})
        job = TrainingJob(job_id="bucket-outage", asset_spec=UnityAssetSpec(
            asset_id="bucket", name="BucketAgent", description="reach the target"), rl_config=cfg)
        holder: dict = {}
        runner = threading.Thread(target=lambda: holder.update(result=orch.execute_training_job_sync(job)))
        t0 = time.monotonic()
        runner.start()
        wait_for(lambda: any("checkpoint" in k or k.endswith(".onnx") for k in store.sizes("runs/bucket-outage")),
                 300, "a first stored checkpoint")
        proxy.down()
        running_at_outage = "result" not in holder
        timer = threading.Timer(outage_s, proxy.up)
        timer.start()
        runner.join()
        timer.join()
        result = holder["result"]
        from mlops_unity_pipeline.artifacts.sync import SKIP_SUFFIXES

        local = {str(p.relative_to(ws / job.job_id)) for p in (ws / job.job_id).rglob("*") if p.is_file()
                 and not p.name.startswith(".") and p.suffix not in SKIP_SUFFIXES}  # what a job stores, by design
        stored = {k.removeprefix("runs/bucket-outage/") for k in store.sizes("runs/bucket-outage")}
        versions = LocalModelRegistry(ws / "_registry", None, store).list()
        blobs = store.sizes("registry/objects")  # what another machine fetches a version's files from
        stored_blobs = sum(f"registry/objects/{v.model_sha256}" in blobs for v in versions)
        log(f"  missing from the bucket: {sorted(local - stored)[:10]}")
        return {"outage_s": outage_s, "status": result.status, "error": result.error, "versions": len(versions),
                "model_blobs_stored": stored_blobs, "missing_files": sorted(local - stored)[:10],
                "missing": len(local - stored), "refused_connections": proxy.refused,
                "job_s": round(time.monotonic() - t0, 1), "running_at_outage": running_at_outage}
    finally:
        proxy.close()
        emulator.stop()
        if before is None:
            os.environ.pop("STORAGE_EMULATOR_HOST", None)
        else:
            os.environ["STORAGE_EMULATOR_HOST"] = before


def table(res: dict) -> tuple[str, bool]:
    rows, ok = [], True

    def row(scenario: str, measure: str, value, good: bool) -> None:
        nonlocal ok
        ok = ok and good
        rows.append(f"| {scenario} | {measure} | {value} | {'ok' if good else 'FAILED'} |")

    if "kill" in res:
        k = res["kill"]
        s = f"kill -9 × {k['runs']}"
        row(s, "lost runs", k["lost_runs"], k["lost_runs"] == 0)
        row(s, "duplicate runs", k["duplicate_runs"], k["duplicate_runs"] == 0)
        row(s, "duplicate versions", f"{k['duplicate_versions']} ({k['versions']} versions)",
            k["duplicate_versions"] == 0 and k["versions"] == k["runs"])
        row(s, "runs whose finished training was redone", k["trained_twice"], k["trained_twice"] == 0)
        row(s, "kills during training resumed from a checkpoint (step > 0)",
            f"{k['train_kills_resumed']}/{k['train_kills']}", k["train_kills_resumed"] == k["train_kills"])
    if "outage" in res:
        o = res["outage"]
        s = f"receiver down {o['outage_s']:.0f} s, {o['senders']} senders"
        row(s, "webhooks delivered after the outage", f"{o['delivered']}/{o['events']} "
            f"({100 * o['delivered'] / max(o['events'], 1):.0f} %), drained {o['drained_after_s']} s after",
            o["delivered"] == o["events"])
        row(s, "webhook-ids delivered twice", o["duplicate_ids"], o["duplicate_ids"] == 0)
    if "ports" in res:
        p = res["ports"]
        s = f"{p['jobs']} ML-Agents jobs at once + a port thief"
        row(s, "port failures", p["port_failures"], p["port_failures"] == 0)
        row(s, "jobs completed", f"{p['completed']}/{p['jobs']} ({p['port_retries']} retried on another range)",
            p["completed"] == p["jobs"])
    if "database" in res:
        b = res["database"]
        s = f"PostgreSQL killed -9 and restarted × {b['restarts']}, {b['runs']} scheduled runs"
        row(s, "lost runs", b["lost_runs"], b["lost_runs"] == 0)
        row(s, "duplicate versions", f"{b['duplicate_versions']} ({b['versions']} versions)",
            b["duplicate_versions"] == 0 and b["versions"] == b["runs"])
        row(s, "missing models", b["missing_models"], b["missing_models"] == 0)
        row(s, "scheduler still running, lock kept",
            f"{'yes' if b['scheduler_alive'] and not b['lock_lost'] else 'no'} (waited out the database "
            f"{b['waits_logged']} times; {b['elapsed_s']} s)", b["scheduler_alive"] and not b["lock_lost"])
        row(s, "runs whose job.completed webhook was lost",
            f"{b['completed'] - b['completions_delivered']} ({b['events_spooled']} events spooled while it was down)",
            b["completions_delivered"] == b["completed"])
        row(s, "webhook-ids delivered twice", b["webhook_duplicates"], b["webhook_duplicates"] == 0)
    if "bucket" in res:
        c = res["bucket"]
        s = f"bucket unreachable {c['outage_s']:.0f} s from a job's first checkpoint"
        row(s, "job completed", f"{c['status']} in {c['job_s']} s ({c['refused_connections']} connections reset; "
            f"{'training' if c['running_at_outage'] else 'done'} when it went down)",
            c["status"] == "completed" and c["running_at_outage"])
        row(s, "versions registered, their blobs in the bucket", f"{c['versions']}, {c['model_blobs_stored']}",
            c["versions"] == 1 and c["model_blobs_stored"] == 1)
        row(s, "job files missing from the bucket", c["missing"], c["missing"] == 0)
    head = "| scenario | measure | result | |\n|---|---|---|---|"
    return head + "\n" + "\n".join(rows), ok


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--kills", type=int, default=20)
    ap.add_argument("--kill-steps", type=int, default=20000, help="max_steps of each killed job (fast trainer)")
    ap.add_argument("--outage", type=float, default=600.0, help="seconds the webhook receiver is down")
    ap.add_argument("--events", type=int, default=20, help="events emitted during the outage")
    ap.add_argument("--senders", type=int, default=3, help="sender processes sharing the outbox")
    ap.add_argument("--retry-schedule", default="default",
                    help="webhook retry delays in seconds, comma-separated, or 'default' (the product's)")
    ap.add_argument("--mlagents-jobs", type=int, default=4)
    ap.add_argument("--mlagents-steps", type=int, default=3000)
    ap.add_argument("--only", default="kill,outage,ports", help="scenarios: kill, outage, ports, database, bucket")
    ap.add_argument("--bucket-outage", type=float, default=60.0, help="seconds the artifact bucket is unreachable")
    ap.add_argument("--database-runs", type=int, default=10, help="scheduled runs in the database scenario")
    ap.add_argument("--database-restarts", type=int, default=5, help="PostgreSQL kill -9 + restarts")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--json", help="also write the results here")
    ap.add_argument("--role", default="harness", help=argparse.SUPPRESS)
    ap.add_argument("--db", help=argparse.SUPPRESS)
    ap.add_argument("--url", help=argparse.SUPPRESS)
    ap.add_argument("--stop", help=argparse.SUPPRESS)
    ap.add_argument("--schedule", type=lambda s: [float(x) for x in s.split(",")], help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.role == "sender":
        _sender_main(args)
        return 0
    from mlops_unity_pipeline.webhooks.outbox import DEFAULT_RETRY_SCHEDULE_S

    schedule = DEFAULT_RETRY_SCHEDULE_S if args.retry_schedule == "default" else \
        tuple(float(x) for x in args.retry_schedule.split(","))
    only = set(args.only.split(","))
    rng = random.Random(args.seed)
    res: dict = {}

    def log(msg: str) -> None:
        print(msg, flush=True)

    with tempfile.TemporaryDirectory(prefix="unity-mlops-chaos-") as tmp:
        tmp_path = Path(tmp)
        outage = None
        if "outage" in only:  # mostly waiting: runs beside the others
            holder: dict = {}
            outage = threading.Thread(target=lambda: holder.update(outage=scenario_outage(
                tmp_path, args.outage, args.events, args.senders, schedule, log)))
            outage.start()
        try:
            if "kill" in only:
                log(f"kill -9: {args.kills} trials")
                res["kill"] = scenario_kill(tmp_path, args.kills, args.kill_steps, rng, log)
            if "database" in only:
                log(f"database: {args.database_restarts} PostgreSQL restarts under {args.database_runs} runs")
                res["database"] = scenario_database(tmp_path, args.database_runs, args.database_restarts, rng, log)
            if "bucket" in only:
                log(f"bucket: unreachable {args.bucket_outage:.0f} s during a job's uploads")
                res["bucket"] = scenario_bucket(tmp_path, args.bucket_outage, log)
            if "ports" in only:
                log(f"ports: {args.mlagents_jobs} ML-Agents jobs")
                res["ports"] = scenario_ports(tmp_path, args.mlagents_jobs, args.mlagents_steps, log)
        finally:  # even when a scenario fails: the outage's senders stop before their directory is removed
            if outage is not None:
                log(f"outage: receiver down {args.outage:.0f} s, retry schedule {list(schedule)}")
                outage.join()
        if outage is not None:
            res["outage"] = holder["outage"]
    text, ok = table(res)
    print(text)
    if args.json:
        Path(args.json).write_text(json.dumps({**res, "ok": ok}, indent=2, default=str))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
