"""Defaults chosen from measurements (docs/benchmarks/fast-trainer.md) stay what was measured, and the contention
rule of the fast trainer's update threads follows the kernel's own count of runnable tasks."""

from __future__ import annotations

import multiprocessing as mp
import os
import time

from mlops_unity_pipeline import RLTrainingConfig
from mlops_unity_pipeline.behavior import build_behavior
from mlops_unity_pipeline.fast.threads import UpdateThreads, runnable_besides_me
from mlops_unity_pipeline.trainer.config import behavior_settings, on_policy_time_horizon

QUICK_START = {"description": "Reach target position while avoiding obstacles",
               "observation_space": {"raycast": 8, "velocity": 2}}


def settings_for(**config):
    d = build_behavior(behavior_name="SimpleAgent", **QUICK_START)
    return behavior_settings(d, RLTrainingConfig(max_steps=100_000, **config))


def test_the_quick_start_runs_on_policy_with_the_measured_defaults():
    s = settings_for(num_envs=8)  # the setup guide's quick start: 8 players x 32 agents
    assert s["time_horizon"] == 16, "a 4096-step buffer over 256 agents: 16 steps each per update"
    assert s["hyperparameters"]["learning_rate"] == 3.0e-3 and s["hyperparameters"]["batch_size"] == 256
    assert s["network_settings"]["normalize"] is False
    assert settings_for(num_envs=1)["time_horizon"] == 64, "one player: the archetype's horizon"
    assert settings_for(num_envs=8, time_horizon=48)["time_horizon"] == 48, "the user's value wins"
    assert settings_for(num_envs=8, algorithm="SAC")["time_horizon"] == 64, "off-policy: no reason to shrink it"
    assert on_policy_time_horizon(64, 4096, 10_000) == 8 and on_policy_time_horizon(64, 4096, 0) == 64


def test_update_threads_follow_the_runnable_count(tmp_path):
    loadavg = tmp_path / "loadavg"
    cpus = os.cpu_count() or 1
    loadavg.write_text("0.00 0.00 0.00 1/300 12345\n")  # only this thread
    assert UpdateThreads(budget=2, loadavg=loadavg).choose() == min(2, cpus)
    loadavg.write_text(f"9.00 9.00 9.00 {cpus + 1}/300 12345\n")  # every CPU has another runnable task
    assert UpdateThreads(budget=2, loadavg=loadavg).choose() == 1
    assert UpdateThreads(budget=1, loadavg=loadavg).choose() == 1
    assert UpdateThreads(budget=2, loadavg=tmp_path / "missing").choose() == 1, "unknown: one thread"
    loadavg.write_text("garbage\n")
    assert runnable_besides_me(loadavg) is None


def _spin() -> None:
    while True:
        pass


def test_busy_cores_make_the_update_single_threaded():
    """The real kernel count: with a busy process per CPU, every decision is one thread."""
    procs = [mp.Process(target=_spin, daemon=True) for _ in range(os.cpu_count() or 1)]
    for p in procs:
        p.start()
    try:
        threads = UpdateThreads(budget=2)
        choices = []
        for _ in range(20):
            choices.append(threads.choose())
            time.sleep(0.02)
        assert choices[-10:] == [1] * 10, choices
    finally:
        for p in procs:
            p.kill()
            p.join()
