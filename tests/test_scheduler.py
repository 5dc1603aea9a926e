"""The scheduler with an injected clock: cron across DST, persisted state, missed-run and overlap policies,
retries, pause/resume, jitter, the single-instance lock and the health endpoints. Jobs here fail fast or take
a couple of seconds (a stand-in trainer command); real training is exercised in test_scheduler_processes.py."""

from __future__ import annotations

import asyncio
import sys
import urllib.request
from datetime import datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest

from mlops_unity_pipeline import TrainingSchedule, TrainingScheduler, UnityAssetSpec, UnityMLOpsOrchestrator
from mlops_unity_pipeline.errors import SpecError, UserError
from mlops_unity_pipeline.scheduler.scheduler import jitter_for
from mlops_unity_pipeline.scheduler.triggers import CronTrigger

UTC = timezone.utc
T0 = datetime(2026, 5, 1, 0, 0, tzinfo=UTC)


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
    # the repeated hour on the fall-back day fires once, at its first occurrence
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


class Clock:
    def __init__(self, now):
        self.now = now

    def __call__(self):
        return self.now


def asset(i=0):
    return UnityAssetSpec(asset_id=f"a{i}", name=f"Agent{i}", description="reach the target")


def schedule(**kw):
    base = dict(schedule_id="hourly", cron_expression="0 * * * *", asset_specs=[asset()], max_retries=0)
    return TrainingSchedule(**{**base, **kw})


@pytest.fixture
def fast_jobs(monkeypatch, clean_build_env, trainer_env):
    """Jobs that take ~1.5 s and then fail in the train stage (the stand-in trainer writes no model)."""
    monkeypatch.setenv("MLAGENTS_TRAIN_COMMAND", f"{sys.executable} -c 'import time; time.sleep(1.5)'")


def make(tmp_path, clock, *specs, **kw):
    orch = UnityMLOpsOrchestrator(tmp_path / "runs", show_progress=False)
    sched = TrainingScheduler(orch, clock=clock, state_dir=tmp_path / "state", **kw)
    for s in specs:
        sched.add_schedule(s)
    return sched


def statuses(sched, schedule_id="hourly"):
    return sorted((r.slot.isoformat(), r.status) for r in sched.store.runs_for(schedule_id, 100))


@pytest.mark.parametrize("policy, deadline, expected", [
    ("skip", None, ["2026-05-01T05:00:00+00:00"]),  # the current slot is on time; the 4 before are dropped
    ("latest", None, ["2026-05-01T05:00:00+00:00"]),
    ("all", None, [f"2026-05-01T0{h}:00:00+00:00" for h in (3, 4, 5)]),  # bounded by max_catchup_runs=3
])
def test_missed_run_policies_after_downtime(database, tmp_path, policy, deadline, expected):
    clock = Clock(T0 + timedelta(minutes=1))
    sched = make(tmp_path, clock, schedule(missed_run_policy=policy, starting_deadline_s=deadline,
                                           max_catchup_runs=3))
    clock.now = T0 + timedelta(hours=5, seconds=20)  # down from 00:01 to 05:00:20: slots 01..05 came due
    sched.fire_due()
    pending = sorted(r.slot.isoformat() for r in sched.store.pending_runs())
    assert pending == expected
    assert sum(1 for _, s in statuses(sched) if s == "pending") == len(expected)


def test_starting_deadline_and_skip_when_late(database, tmp_path):
    clock = Clock(T0 + timedelta(minutes=1))
    late = make(tmp_path, clock, schedule(missed_run_policy="latest", starting_deadline_s=600))
    clock.now = T0 + timedelta(hours=5, minutes=20)  # the 05:00 slot is 20 min late, past its 10 min deadline
    late.fire_due()
    assert late.store.pending_runs() == []
    late.store.release()  # it stops: a shared database has one active scheduler, whatever the state directory
    skip = make(tmp_path / "b", clock, schedule(schedule_id="s2", missed_run_policy="skip"))
    clock.now += timedelta(hours=1, minutes=5)  # 06:00 is 25 min old: not on time for `skip`
    skip.fire_due()
    assert skip.store.pending_runs() == []


def test_state_survives_restarts_and_a_slot_runs_once(database, tmp_path):
    clock = Clock(T0 + timedelta(minutes=1))
    first = make(tmp_path, clock, schedule())
    clock.now = T0 + timedelta(hours=1, seconds=5)
    first.fire_due()
    assert len(first.store.pending_runs()) == 1
    first.store.release()  # the first process ends
    second = make(tmp_path, clock, schedule())  # a restart: same state store
    second.fire_due()
    assert len(second.store.pending_runs()) == 1, "the 01:00 slot is not recorded twice"
    state = second.store.get_schedule("hourly")
    assert state["last_fire"] == T0 + timedelta(hours=1) and state["next_fire"] == T0 + timedelta(hours=2)


def test_pause_and_resume_without_a_burst(database, tmp_path):
    clock = Clock(T0 + timedelta(minutes=1))
    sched = make(tmp_path, clock, schedule(missed_run_policy="all", max_catchup_runs=10))
    sched.pause("hourly")
    clock.now = T0 + timedelta(hours=6, minutes=30)
    sched.fire_due()
    assert sched.store.pending_runs() == []
    sched.resume("hourly")
    sched.fire_due()
    assert sched.store.pending_runs() == [], "resume does not replay the paused slots"
    clock.now = T0 + timedelta(hours=7, seconds=1)
    sched.fire_due()
    assert [r.slot for r in sched.store.pending_runs()] == [T0 + timedelta(hours=7)]


def test_jitter_is_deterministic_and_bounded():
    s = schedule(jitter_s=120)
    slots = [T0 + timedelta(hours=h) for h in range(50)]
    delays = [jitter_for(s, slot).total_seconds() for slot in slots]
    assert delays == [jitter_for(s, slot).total_seconds() for slot in slots]
    assert all(0 <= d < 120 for d in delays) and len(set(delays)) > 40
    assert jitter_for(schedule(), T0) == timedelta(0)


def test_one_active_scheduler_per_state_store(database, tmp_path):
    clock = Clock(T0)
    a = make(tmp_path, clock, schedule())
    a.start()
    b = make(tmp_path, clock)
    with pytest.raises(UserError, match="already running with the state store"):
        b.start()
    # a refused scheduler changes nothing: its schedules are not written into the live store
    with pytest.raises(UserError, match="already running with the state store"):
        b.add_schedule(schedule(schedule_id="other", cron_expression="*/5 * * * *"))
    with pytest.raises(UserError, match="already running with the state store"):
        b.add_schedule(schedule(cron_expression="*/5 * * * *"))
    assert [s["schedule_id"] for s in a.store.list_schedules()] == ["hourly"]
    assert a.store.get_schedule("hourly")["spec"]["cron_expression"] == "0 * * * *"
    a.store.release()
    b.start()
    b.store.release()


async def _drive(sched, clock, until, step=timedelta(seconds=30)):
    """Tick with a fast clock until `until`, then until nothing is pending or running."""
    sched.start()
    for _ in range(5000):
        if clock.now >= until and not sched.running and not sched.store.pending_runs():
            break
        await sched.tick()
        await asyncio.sleep(0.02)
        clock.now += step
    sched.store.release()


def test_failing_jobs_are_retried_then_the_scheduler_carries_on(database, tmp_path, fast_jobs):
    clock = Clock(T0 + timedelta(minutes=59))
    sched = make(tmp_path, clock, schedule(asset_specs=[asset(0), asset(1)], max_retries=1, retry_backoff_s=60))
    asyncio.run(_drive(sched, clock, T0 + timedelta(hours=1, minutes=10), step=timedelta(seconds=20)))
    runs = sched.store.runs_for("hourly", 20)
    first = [r for r in runs if r.slot == T0 + timedelta(hours=1)]
    assert sorted((r.asset_id, r.status, r.attempts) for r in first) == [("a0", "failed", 2), ("a1", "failed", 2)]
    # later slots that came due while the 01:00 run was still retrying were skipped (overlap policy forbid)
    assert {r.status for r in runs if r not in first} <= {"skipped"}
    assert all(r.failed_stage == "train" for r in sched.history) and len(sched.history) == 4


@pytest.mark.parametrize("policy, concurrency, expected", [
    ("forbid", 2, {("00:01", "failed"), ("00:02", "skipped")}),
    ("queue", 2, {("00:01", "failed"), ("00:02", "failed")}),
    ("allow", 2, {("00:01", "failed"), ("00:02", "failed")}),
])
def test_overlap_policies(tmp_path, fast_jobs, policy, concurrency, expected):
    clock = Clock(T0 + timedelta(seconds=30))
    sched = make(tmp_path, clock, schedule(schedule_id="minutely", cron_expression="* * * * *",
                                           overlap_policy=policy), max_concurrent_jobs=concurrency)

    async def scenario():
        sched.start()
        clock.now = T0 + timedelta(minutes=1, seconds=1)
        await sched.tick()  # 00:01 starts
        clock.now = T0 + timedelta(minutes=2, seconds=1)
        await sched.tick()  # 00:02 comes due while 00:01 runs
        both_running = len(sched.running) == 2
        await sched.wait_idle()
        await sched.tick()  # a queued run starts now
        await sched.wait_idle()
        sched.store.release()
        return both_running

    both = asyncio.run(scenario())
    got = {(r.slot.strftime("%H:%M"), r.status) for r in sched.store.runs_for("minutely", 10)}
    assert got == expected
    assert both == (policy == "allow")


def test_global_concurrency_limit(tmp_path, fast_jobs):
    clock = Clock(T0 + timedelta(minutes=59))
    sched = make(tmp_path, clock, schedule(asset_specs=[asset(0), asset(1), asset(2)]), max_concurrent_jobs=1)

    async def scenario():
        sched.start()
        clock.now = T0 + timedelta(hours=1, seconds=1)
        await sched.tick()
        assert len(sched.running) == 1
        while sched.store.pending_runs() or sched.running:
            await sched.wait_idle()
            await sched.tick()
            assert len(sched.running) <= 1
        sched.store.release()

    asyncio.run(scenario())
    assert len(sched.history) == 3


def test_health_endpoints(tmp_path):
    from mlops_unity_pipeline.scheduler.health import start_health_server

    clock = Clock(T0)
    sched = make(tmp_path, clock, schedule())
    server = start_health_server(sched, "127.0.0.1", 0)  # the server holds the port it was given: no race
    port = server.server_address[1]

    def get(path):
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as r:
                return r.status, r.read().decode()
        except urllib.error.HTTPError as e:
            return e.code, e.read().decode()

    try:
        assert get("/healthz")[0] == 503 and get("/readyz")[0] == 503  # no loop yet
        sched.start()
        asyncio.run(sched.tick())
        assert get("/healthz") == (200, "ok\n") and get("/readyz") == (200, "ready\n")
        code, text = get("/metrics")
        assert code == 200 and "unity_mlops_scheduler_up 1" in text and "unity_mlops_jobs_running 0" in text
        assert get("/nope")[0] == 404
    finally:
        server.shutdown()
        sched.store.release()


@pytest.mark.parametrize("expr, reason", [
    ("0 0 31 2 *", "never fires"),  # valid fields, a date that never comes
    ("0 0 30 2 *", "never fires"),
    ("0 0 31 4,6,9,11 *", "never fires"),
    ("61 99 * * *", "not a valid cron"),
    ("@fortnightly", "not a valid cron"),
    ("*/0 * * * *", "not a valid cron"),
])
def test_cron_is_checked_where_it_is_written(tmp_path, expr, reason):
    import subprocess
    import sys

    with pytest.raises(Exception, match=reason) as err:
        schedule(cron_expression=expr)
    assert "cron_expression" in str(err.value)
    cfg = tmp_path / "s.yaml"
    cfg.write_text(f"schedules:\n  - schedule_id: s\n    cron_expression: \"{expr}\"\n"
                   "    asset_specs: [{asset_id: a, name: A}]\n")
    for args in (["k8s", "render", str(cfg), "--validate", "--mode", "cronjob"], ["schedule", "run", str(cfg)]):
        r = subprocess.run([sys.executable, "-m", "mlops_unity_pipeline", *args], capture_output=True, text=True,
                           cwd=tmp_path, timeout=120)
        assert r.returncode == 2 and reason in r.stderr and "Traceback" not in r.stderr, r.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["s.yaml"], "nothing written"


def test_a_leap_day_schedule_is_fine_and_cronjobs_take_five_fields(tmp_path):
    import subprocess
    import sys

    assert schedule(cron_expression="0 0 29 2 *").cron_expression == "0 0 29 2 *"
    cfg = tmp_path / "s.yaml"
    cfg.write_text("schedules:\n  - schedule_id: s\n    cron_expression: \"0 0 * * * 30\"\n"
                   "    asset_specs: [{asset_id: a, name: A}]\n")
    r = subprocess.run([sys.executable, "-m", "mlops_unity_pipeline", "k8s", "render", str(cfg), "--mode", "cronjob"],
                       capture_output=True, text=True, cwd=tmp_path, timeout=120)
    assert r.returncode == 2 and "exactly 5" in r.stderr, r.stderr


def test_restarts_are_not_failures(database, tmp_path, fast_jobs):
    """A run left `running` by a killed scheduler is resumed; the restart does not use up its retries."""
    clock = Clock(T0 + timedelta(minutes=59))
    first = make(tmp_path, clock, schedule(max_retries=0))
    clock.now = T0 + timedelta(hours=1, seconds=1)
    first.fire_due()
    [row] = first.store.pending_runs()
    for _ in range(3):  # three kill -9s while it ran
        first.store.update_run(row.run_key, status="running")
        first.store.recover_interrupted()
    first.store.release()
    sched = make(tmp_path, clock, schedule(max_retries=0))
    asyncio.run(_drive(sched, clock, clock.now))
    [done] = sched.store.runs_for("hourly", 5)
    assert (done.status, done.attempts, done.restarts) == ("failed", 1, 3), "one real attempt, three restarts"
