"""Cron triggers across DST, and the scheduler's loop with an injected clock (no sleeping for real hours)."""

import asyncio
import os
import queue
import signal
import subprocess
import sys
import threading
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from mlops_unity_pipeline import TrainingSchedule, TrainingScheduler, UnityAssetSpec, UnityMLOpsOrchestrator
from mlops_unity_pipeline.errors import SpecError
from mlops_unity_pipeline.scheduler.triggers import CronTrigger

UTC = timezone.utc
ROOT = Path(__file__).resolve().parents[1]


def fires(expr, tz, start, n):
    t, out, at = CronTrigger(expr, tz), [], start
    for _ in range(n):
        at = t.next_after(at)
        out.append(at)
    return out


def test_daily_fire_times_in_utc():
    got = fires("0 2 * * *", "UTC", datetime(2026, 1, 1, 3, tzinfo=UTC), 2)
    assert got == [datetime(2026, 1, 2, 2, tzinfo=UTC), datetime(2026, 1, 3, 2, tzinfo=UTC)]


@pytest.mark.parametrize("tz, spring, fall", [
    ("Europe/Berlin", datetime(2026, 3, 29), datetime(2026, 10, 25)),
    ("America/New_York", datetime(2026, 3, 8), datetime(2026, 11, 1)),
])
def test_dst_non_existent_and_ambiguous_local_times(tz, spring, fall):
    zone = ZoneInfo(tz)
    # 02:30 does not exist on the spring-forward day: it fires once, at 03:00 local
    got = fires("30 2 * * *", tz, spring.replace(hour=0, tzinfo=zone), 2)
    assert got[0].astimezone(zone).replace(tzinfo=None) == spring.replace(hour=3)
    assert got[1].astimezone(zone).replace(tzinfo=None) == spring.replace(hour=2, minute=30) + timedelta(days=1)
    # 01:30 (New York) / 02:30 (Berlin) exists twice on the fall-back day: it fires once, at the first occurrence
    hour = 1 if tz == "America/New_York" else 2
    got = fires(f"30 {hour} * * *", tz, fall.replace(hour=0, tzinfo=zone), 2)
    first = got[0].astimezone(zone)
    assert first.replace(tzinfo=None) == fall.replace(hour=hour, minute=30) and first.fold == 0
    assert got[1] - got[0] > timedelta(hours=23), "no second run an hour later"


def test_bad_cron_and_timezone_are_clear():
    with pytest.raises(SpecError, match="not a valid cron"):
        CronTrigger("61 * * * *")
    with pytest.raises(SpecError, match="IANA"):
        CronTrigger("0 2 * * *", "Mars/Olympus")


class FakeClock:
    def __init__(self, now):
        self.now = now

    def __call__(self):
        return self.now


def test_failing_jobs_do_not_stop_the_scheduler(tmp_path, monkeypatch, clean_build_env):
    monkeypatch.setenv("UNITY_BUILD_COMMAND", "false")  # every build fails, fast
    clock = FakeClock(datetime(2026, 5, 1, 1, 59, tzinfo=UTC))
    orch = UnityMLOpsOrchestrator(tmp_path / "runs", show_progress=False)
    sched = TrainingScheduler(orch, clock=clock)
    assets = [UnityAssetSpec(asset_id=f"a{i}", name=f"Agent{i}", description="reach") for i in range(2)]
    sched.add_schedule(TrainingSchedule(schedule_id="nightly", cron_expression="0 2 * * *", asset_specs=assets))
    assert asyncio.run(sched.run_due()) == []  # 01:59: nothing due
    clock.now = datetime(2026, 5, 1, 2, 0, 5, tzinfo=UTC)
    results = asyncio.run(sched.run_due())
    assert [r.job_id for r in results] == ["nightly-a0-20260501T0200Z", "nightly-a1-20260501T0200Z"]
    assert all(r.status == "failed" and r.failed_stage == "build" for r in results)
    assert asyncio.run(sched.run_due()) == [], "a slot runs once"
    assert sched.entries["nightly"].next_fire == datetime(2026, 5, 2, 2, tzinfo=UTC)


def test_seed_scheduler_script_runs_and_stops_on_sigterm(tmp_path):
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen([sys.executable, str(ROOT / "scripts" / "scheduler_24x7.py")], cwd=tmp_path,
                            stderr=subprocess.PIPE, text=True, env=env)
    lines: queue.Queue[str] = queue.Queue()
    threading.Thread(target=lambda: [lines.put(x) for x in proc.stderr], daemon=True).start()
    seen = ""
    deadline = time.monotonic() + 60
    while "scheduler running" not in seen and time.monotonic() < deadline:
        try:
            seen += lines.get(timeout=1)
        except queue.Empty:
            assert proc.poll() is None, seen
    proc.send_signal(signal.SIGTERM)
    proc.wait(timeout=30)
    assert proc.returncode == 0, seen
    assert "next run at" in seen and "scheduler running" in seen
