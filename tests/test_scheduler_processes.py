"""The 24/7 scheduler as a real process with real training: SIGTERM leaves a resumable job, kill -9 mid-job and
a restart resume it from its checkpoint, and the run (schedule, slot, asset) happens exactly once."""

from __future__ import annotations

import json
import os
import re
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytestmark = [pytest.mark.trainer, pytest.mark.usefixtures("clean_build_env")]

CONFIG = """
workspace: {workspace}
poll_interval_s: 0.5
grace_period_s: 90
schedules:
  - schedule_id: nightly
    cron_expression: "0 2 * * *"
    max_retries: 0
    asset_specs:
      - {{asset_id: nav-1, name: SimpleAgent, description: Reach target position}}
    rl_config:
      max_steps: 30000
      checkpoint_interval: 6000
      summary_freq: 2000
      agents_per_env: 16
      hyperparameters: {{buffer_size: 1024, batch_size: 256}}
"""


def cli(*args, **kw):
    return [sys.executable, "-m", "mlops_unity_pipeline", *args]


def wait_for(predicate, timeout, proc=None, what=""):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        if proc is not None and proc.poll() is not None:
            raise AssertionError(f"scheduler exited early ({proc.returncode}) while waiting for {what}")
        time.sleep(0.3)
    raise AssertionError(f"timed out waiting for {what}")


def runs(state: Path):
    with sqlite3.connect(state / "scheduler.db") as conn:
        return conn.execute("SELECT run_key, status, job_id FROM runs").fetchall()


def checkpoints(ws: Path) -> list[int]:
    """Complete checkpoints: ML-Agents exports the step's ONNX last."""
    return sorted(int(p.stem.rsplit("-", 1)[1]) for p in ws.glob("*/training/*/SimpleAgent/SimpleAgent-*.onnx"))


def test_sigterm_then_kill9_then_restart_resumes_and_runs_the_slot_once(tmp_path, trainer_env):
    workspace = tmp_path / "runs"
    state = workspace / "_state"
    cfg = tmp_path / "scheduler.yaml"
    cfg.write_text(CONFIG.format(workspace=workspace))
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    out = subprocess.run(cli("schedule", "trigger", str(cfg), "nightly"), capture_output=True, text=True, env=env)
    assert out.returncode == 0 and "queued nightly-nav-1-manual-" in out.stdout, out.stderr
    log = (tmp_path / "scheduler.log").open("w")

    # 1. start; once a checkpoint exists, SIGTERM: exit 0, the run is marked interrupted (resumable)
    proc = subprocess.Popen(cli("schedule", "run", str(cfg)), stdout=log, stderr=subprocess.STDOUT, env=env)
    wait_for(lambda: checkpoints(workspace), 180, proc, "a first checkpoint")
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=120) == 0
    [(key, status, job_id)] = runs(state)
    assert status == "interrupted"
    run_dir = workspace / job_id / "training" / job_id
    assert (run_dir / "run_logs" / "training_status.json").is_file(), "ML-Agents saved on SIGINT"
    first = max(checkpoints(workspace))

    # 2. restart: it resumes; once it wrote a later checkpoint, kill -9 the scheduler (its trainer lives on)
    proc = subprocess.Popen(cli("schedule", "run", str(cfg)), stdout=log, stderr=subprocess.STDOUT, env=env)
    wait_for(lambda: max(checkpoints(workspace)) > first, 180, proc, "a checkpoint after resuming")
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    assert runs(state)[0][1] == "running"
    second = max(checkpoints(workspace))

    # 3. restart: the orphaned trainer is stopped, the job resumes from its checkpoint and completes
    proc = subprocess.Popen(cli("schedule", "run", str(cfg)), stdout=log, stderr=subprocess.STDOUT, env=env)
    try:
        wait_for(lambda: runs(state)[0][1] in ("completed", "failed"), 300, proc, "the run to finish")
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=120) == 0
    assert [(k, s) for k, s, _ in runs(state)] == [(key, "completed")], "one run for the slot, completed"
    with sqlite3.connect(state / "scheduler.db") as conn:
        assert conn.execute("SELECT attempts, restarts FROM runs").fetchone() == (1, 2), "restarts are no failures"
    log.close()
    lines = [ln for ln in (tmp_path / "scheduler.log").read_text().splitlines() if "starting nightly" in ln]
    assert lines and all(re.match(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d", ln) for ln in lines), "timestamped"
    result = json.loads((workspace / job_id / "result.json").read_text())
    training = result["metrics"]["training"]
    assert result["status"] == "completed" and training["final_step"] >= 30000
    assert training["resumed_from_step"] >= second
    registry = subprocess.run(cli("models", "--registry", str(workspace / "_registry"), "list"), capture_output=True,
                              text=True)
    assert registry.stdout.count("unity-simpleagent-") == 1
