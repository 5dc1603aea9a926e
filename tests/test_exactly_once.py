"""The pieces exactly-once rests on, each attacked directly: the job state machine across restarts, port
reservations racing across processes, per-job logs with concurrent jobs, secrets kept from trainers and webhook
bodies. The whole story with real kill -9s is `test_chaos.py` (bench/chaos.py)."""

from __future__ import annotations

import asyncio
import json
import os
import socket
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from mlops_unity_pipeline import RLTrainingConfig, TrainingJob, UnityAssetSpec, UnityMLOpsOrchestrator
from mlops_unity_pipeline.pipeline.jobstate import JobState
from mlops_unity_pipeline.redaction import child_environment, redact
from mlops_unity_pipeline.trainer.ports import reserve_ports
from racing import CTX, race

ASSET = UnityAssetSpec(asset_id="eo-1", name="OnceAgent", description="Reach target position")
FAST = RLTrainingConfig(trainer="fast", max_steps=4096, checkpoint_interval=2048, summary_freq=2048,
                        hyperparameters={"buffer_size": 1024, "batch_size": 256})


# ------------------------------------------------------------------------------------------- job state machine
def test_job_state_continues_the_same_run_and_starts_a_new_attempt_only_when_done(tmp_path):
    s = JobState.begin(tmp_path, "j", None)
    assert (s.attempt, s.run_key, s.run_id, s.phase) == (1, "j#1", "j", "pending")
    s.move("running")
    again = JobState.begin(tmp_path, "j", None)  # a restart mid-run: the same run
    assert (again.attempt, again.phase) == (1, "running")
    again.move("completed")
    new = JobState.begin(tmp_path, "j", None)  # re-running a completed one-off job: a new attempt
    assert (new.attempt, new.run_key, new.run_id) == (2, "j#2", "j-attempt2")
    keyed = JobState.begin(tmp_path, "j", "sched|slot|a")  # a scheduler run reusing the id
    assert keyed.attempt == 3 and keyed.run_key == "sched|slot|a"
    keyed.move("completed")
    assert JobState.begin(tmp_path, "j", "sched|slot|a").phase == "completed", "the same run key: finish only"


def test_one_off_rerun_keeps_the_previous_attempt_and_a_restart_registers_nothing_new(tmp_path):
    orch = UnityMLOpsOrchestrator(tmp_path / "runs", evaluation_episodes=50, show_progress=False)
    job = TrainingJob(job_id="once", asset_spec=ASSET, rl_config=FAST)
    first = orch.execute_training_job_sync(job)
    assert first.succeeded
    # a scheduler restart that relaunches a run that had finished: bookkeeping only, the same version
    state = JobState.load(tmp_path / "runs" / "once")
    state.move("trained")  # as if killed between the registry commit and the next state write
    again = orch.execute_training_job_sync(job, run_key=state.run_key)
    assert again.succeeded and again.model_version == first.model_version
    assert again.metrics["evaluation"] == first.metrics["evaluation"], "metrics of the registered run"
    assert len(orch.registry.list()) == 1
    # a deliberate re-run: a new attempt, its own run directory, the first one kept
    second = orch.execute_training_job_sync(job)
    assert second.succeeded and second.model_version != first.model_version
    runs = sorted(p.name for p in (tmp_path / "runs" / "once" / "training").iterdir() if p.is_dir())
    assert runs == ["once", "once-attempt2"]
    assert (tmp_path / "runs" / "once" / "training" / "once" / "OnceAgent.onnx").is_file()
    lineage = orch.registry.get(second.model_version).lineage
    assert lineage["attempt"] == 2 and lineage["run_key"] == "once#2"
    assert first.started_at <= first.finished_at


# ------------------------------------------------------------------------------------------- ports
def _reserve(lock_dir, all_hold):
    os.environ["UNITY_MLOPS_PORT_LOCK_DIR"] = str(lock_dir)
    r = reserve_ports(3, start=41000)
    ports = list(r.ports)
    all_hold.wait(120)  # every process holds its range at this moment
    r.release()
    return ports


def _listen_in(first: int, last: int) -> tuple[socket.socket, int]:
    """A listener on the first port of [first, last] that is free: the test knows where the foreign port lies, so
    the range it then searches always has room around it (an OS-chosen port may sit at the top of the range)."""
    for port in range(first, last + 1):
        s = socket.socket()
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            s.close()
            continue
        s.listen()
        return s, port
    raise RuntimeError(f"every port in {first}-{last} is taken")


def test_port_ranges_never_overlap_across_processes_and_skip_foreign_listeners(tmp_path, monkeypatch):
    monkeypatch.setenv("UNITY_MLOPS_PORT_LOCK_DIR", str(tmp_path / "locks"))
    foreign, busy = _listen_in(40100, 40900)  # inside the range tested below, never a port the OS picks
    with reserve_ports(2, start=busy - 1, stop=41000) as mine:
        assert busy not in mine.ports, "a port a foreign process listens on is skipped"
        with reserve_ports(2, start=busy - 1, stop=41000) as other:  # the same process: still exclusive
            assert not set(mine.ports) & set(other.ports)
    foreign.close()
    all_hold = CTX.Barrier(5)
    ranges = race(_reserve, [(tmp_path / "locks", all_hold)] * 5)
    ports = [p for r in ranges for p in r]
    assert len(ports) == len(set(ports)) == 15, ranges


# ------------------------------------------------------------------------------------------- logs
def test_concurrent_jobs_write_only_their_own_lines(tmp_path):
    orch = UnityMLOpsOrchestrator(tmp_path / "runs", evaluation_episodes=50, show_progress=False)
    jobs = [TrainingJob(job_id=f"log-{i}", asset_spec=ASSET.model_copy(update={"asset_id": f"log-{i}"}),
                        rl_config=FAST) for i in range(2)]

    async def both():
        return await asyncio.gather(*(orch.execute_training_job(j) for j in jobs))

    results = asyncio.run(both())
    assert all(r.succeeded for r in results)
    for i in range(2):
        text = (tmp_path / "runs" / f"log-{i}" / "logs" / "pipeline.log").read_text()
        assert f"job log-{i}:" in text and f"log-{1 - i}" not in text


# ------------------------------------------------------------------------------------------- secrets
PASSWORD, TOKEN, SECRET = "hunter2-pw-Zq", "tok-9f8e7d6c5b", "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"


def test_child_environment_is_an_allow_list(monkeypatch):
    monkeypatch.setenv("WEBHOOK_URL", f"http://u:{PASSWORD}@127.0.0.1:1/x?token={TOKEN}")
    monkeypatch.setenv("WEBHOOK_SECRET", SECRET)
    monkeypatch.setenv("GOOGLE_APPLICATION_CREDENTIALS", "/keys/sa.json")
    monkeypatch.setenv("UNITY_MLOPS_DATABASE_URL", f"postgresql://u:{PASSWORD}@db/x")
    monkeypatch.setenv("OPENBLAS_CORETYPE", "Haswell")
    env = child_environment()
    assert not {k for k in env if "WEBHOOK" in k or "GOOGLE" in k or "DATABASE" in k}
    assert env["PATH"] == os.environ["PATH"] and env["OPENBLAS_CORETYPE"] == "Haswell"
    text = f"url http://u:{PASSWORD}@127.0.0.1:1/x?token={TOKEN} secret {SECRET} pw {PASSWORD}"
    masked = redact(text)
    assert PASSWORD not in masked and TOKEN not in masked and SECRET[6:] not in masked and "***" in masked
    monkeypatch.setenv("DASHBOARD_URL", "http://127.0.0.1:1/d?debug=true&page=home")
    assert redact("debug=true on page home") == "debug=true on page home", "ordinary query values are no secrets"


class _Receiver:
    def __init__(self):
        self.bodies: list[bytes] = []
        rx = self

        class H(BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802
                rx.bodies.append(self.headers.get("authorization", "").encode() + b"\n" +
                                 self.rfile.read(int(self.headers["content-length"])))
                self.send_response(204)
                self.end_headers()

            def log_message(self, *a):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), H)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.port = self.server.server_address[1]


@pytest.mark.trainer
def test_no_secret_reaches_the_workspace_or_a_webhook_body(tmp_path, trainer_env, clean_build_env):
    """Credentials in WEBHOOK_URL, a signing secret, and a trainer that prints its whole environment and fails."""
    rx = _Receiver()
    job = tmp_path / "job.yaml"
    job.write_text("job_id: leaky\nasset_spec: {asset_id: leak-1, name: LeakAgent, description: reach the target}\n"
                   "rl_config: {max_steps: 1000}\n")
    printer = tmp_path / "print_env.py"
    printer.write_text("import os, sys\nfor k, v in sorted(os.environ.items()):\n    print(f'{k}={v}')\n"
                       "print('args', sys.argv)\nsys.exit(3)\n")
    env = {**os.environ, "WEBHOOK_URL": f"http://hook:{PASSWORD}@127.0.0.1:{rx.port}/in?token={TOKEN}",
           "WEBHOOK_SECRET": SECRET, "MLAGENTS_TRAIN_COMMAND": f"{sys.executable} {printer}"}
    try:
        out = subprocess.run([sys.executable, "-m", "mlops_unity_pipeline", "train", str(job), "--workspace",
                              str(tmp_path / "runs"), "-q"], capture_output=True, text=True, env=env, timeout=600)
    finally:
        rx.server.shutdown()
    assert out.returncode == 1 and "stage train" in out.stderr
    trainer_log = (tmp_path / "runs" / "leaky" / "logs" / "trainer.log").read_text()
    assert "PATH=" in trainer_log, "the trainer did print its environment"
    assert [json.loads(b.split(b"\n", 1)[1])["type"] for b in rx.bodies] == ["job.started", "job.failed"]
    assert all(b.startswith(b"Basic ") for b in (x.split(b"\n", 1)[0] for x in rx.bodies)), "credentials were used"
    secrets = [PASSWORD, TOKEN, SECRET, SECRET[6:]]
    leaks = []
    for path in Path(tmp_path / "runs").rglob("*"):
        if path.is_file():
            data = path.read_bytes()
            leaks += [f"{path}: {s}" for s in secrets if s.encode() in data]
    for s in secrets:
        if s in out.stdout + out.stderr:
            leaks.append(f"CLI output: {s}")
        if any(s.encode() in b.split(b"\n", 1)[1] for b in rx.bodies):
            leaks.append(f"webhook body: {s}")
    assert not leaks, (leaks, out.stdout, out.stderr)


def test_onnx_exports_of_concurrent_jobs_do_not_collide(tmp_path):
    """Two jobs in threads of one process (the scheduler's `max_concurrent_jobs`) once failed with "GLOBALS.
    in_onnx_export must be False" when their checkpoints met in torch's exporter; the export now shares nothing."""
    from mlops_unity_pipeline.behavior import build_behavior
    from mlops_unity_pipeline.fast.export import export_onnx
    from mlops_unity_pipeline.fast.network import ActorCritic

    d = build_behavior(behavior_name="Nav", description="reach the target")
    actor = ActorCritic.for_behavior(d, 64, 2, True)
    errors: list[BaseException] = []
    start = threading.Barrier(4)

    def export(i: int) -> None:
        start.wait()
        try:
            for k in range(6):
                export_onnx(actor, d, tmp_path / f"{i}-{k}.onnx")
        except BaseException as exc:  # noqa: BLE001
            errors.append(exc)

    threads = [threading.Thread(target=export, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert len(list(tmp_path.glob("*.onnx"))) == 24
