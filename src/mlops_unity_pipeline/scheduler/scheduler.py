"""`TrainingScheduler`: runs each schedule's assets through the orchestrator at its cron times, 24/7.

Each loop iteration (`tick`) does two things:

1. **Fire**: for every enabled, unpaused schedule, find the slots that came due since its last fire and apply the
   missed-run policy (`skip`: only a slot that is on time; `latest`: the most recent; `all`: every one, bounded)
   and the starting deadline. For each slot and asset a run is *recorded in the state store before it is
   launched*; a (schedule, slot, asset) that was recorded before is never run again.
2. **Dispatch**: start pending runs whose time has come (slot + deterministic jitter, or a retry's backoff),
   honouring each schedule's overlap policy (`forbid` skips, `queue` waits, `allow` runs both) and the global
   limit on concurrent jobs.

A failing job is retried with exponential backoff, then marked failed (`job.failed` is sent by the orchestrator)
and the scheduler carries on. On SIGTERM/SIGINT it stops firing, interrupts running trainings with SIGINT so
ML-Agents checkpoints, marks them `interrupted` and exits; the next start resumes them from their checkpoints
(a run left `running` by a killed scheduler is resumed the same way). Job ids are stable per run, which is what
makes resuming work.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import signal
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path

from .. import settings
from ..events import Event, EventBus, ScheduleMissed, ScheduleStarted
from ..execution.base import Executor, LocalExecutor
from ..failpoints import failpoint
from ..logs import ensure_console_logging
from ..pipeline.orchestrator import UnityMLOpsOrchestrator
from ..specs import TrainingJob, TrainingResult, TrainingSchedule
from ..store import DatabaseError
from .store import RunRow, StateStore
from .triggers import CronTrigger

log = logging.getLogger("unity_mlops.scheduler")

Clock = Callable[[], datetime]
MAX_SLOT_SCAN = 10_000  # bound on the slots examined after a long downtime


def utc_now() -> datetime:
    return datetime.now(timezone.utc)


def job_id_for(schedule_id: str, asset_id: str, slot: datetime, manual: bool = False) -> str:
    """Stable per run: a restarted run resumes from its checkpoint instead of starting over."""
    prefix = "manual-" if manual else ""
    return f"{schedule_id}-{asset_id}-{prefix}{slot.astimezone(timezone.utc):%Y%m%dT%H%M%SZ}"


def jitter_for(schedule: TrainingSchedule, slot: datetime) -> timedelta:
    """Deterministic: the same slot always gets the same delay, across restarts and replicas."""
    if schedule.jitter_s <= 0:
        return timedelta(0)
    h = hashlib.sha256(f"{schedule.schedule_id}|{slot.isoformat()}".encode()).digest()
    return timedelta(seconds=int.from_bytes(h[:8], "big") / 2**64 * schedule.jitter_s)


@dataclass
class _Schedule:
    spec: TrainingSchedule
    trigger: CronTrigger


@dataclass
class _Running:
    row: RunRow
    task: asyncio.Task
    started: float = field(default_factory=time.monotonic)


class TrainingScheduler:
    def __init__(
        self,
        orchestrator: UnityMLOpsOrchestrator,
        *,
        state_dir: str | Path | None = None,
        clock: Clock = utc_now,
        poll_interval_s: float = 1.0,
        max_concurrent_jobs: int = 1,
        on_time_tolerance_s: float = 60.0,
        grace_period_s: float = 120.0,
        health_port: int | None = None,
        health_host: str = "127.0.0.1",
        executor: Executor | None = None,
    ) -> None:
        self.orchestrator = orchestrator
        self.executor: Executor = executor or LocalExecutor(orchestrator)
        self.store = StateStore(state_dir or orchestrator.workspace / settings.STATE_DIRNAME,
                                orchestrator.paths.database)
        self.events: EventBus = orchestrator.events  # one bus: the job's events and the schedule's
        self.clock = clock
        self.poll_interval_s = poll_interval_s
        self.max_concurrent_jobs = max_concurrent_jobs
        self.on_time_tolerance_s = on_time_tolerance_s
        self.grace_period_s = grace_period_s
        self.health_port = health_port
        self.health_host = health_host
        self.schedules: dict[str, _Schedule] = {}
        self.running: dict[str, _Running] = {}
        self.history: list[TrainingResult] = []
        self.heartbeat: float | None = None
        self.ready = False
        self._stop: asyncio.Event | None = None
        self._stopping = False
        self._unrecorded: list[tuple[RunRow, TrainingSchedule, TrainingResult, datetime]] = []
        self._database_away: float | None = None
        ensure_console_logging(timestamps=True)

    # ------------------------------------------------------------------ configuration
    def add_schedule(self, schedule: TrainingSchedule) -> None:
        """Add a schedule and persist it. Takes the state store's lock first: a scheduler that is refused
        because another one runs on the store has changed nothing in it."""
        if schedule.schedule_id in self.schedules:
            raise ValueError(f"schedule {schedule.schedule_id!r} is already added")
        trigger = CronTrigger(schedule.cron_expression, schedule.timezone)
        self.store.acquire()
        self.schedules[schedule.schedule_id] = _Schedule(schedule, trigger)
        state = self.store.upsert_schedule(schedule.schedule_id, schedule.model_dump(mode="json"), self.clock())
        nxt = trigger.next_after(state["last_fire"])
        self.store.set_fire_times(schedule.schedule_id, None, nxt)
        log.info("schedule %s (%s, %s): next run at %s%s", schedule.schedule_id, schedule.cron_expression,
                 schedule.timezone, nxt.isoformat(), " (paused)" if state["paused"] else "")

    def pause(self, schedule_id: str) -> None:
        self.store.set_paused(schedule_id, True, self.clock())

    def resume(self, schedule_id: str) -> None:
        self.store.set_paused(schedule_id, False, self.clock())

    def trigger(self, schedule_id: str) -> list[str]:
        """Run a schedule's assets now (recorded like any run)."""
        return trigger_now(self.store, schedule_id, self.clock())

    # ------------------------------------------------------------------ the loop
    async def tick(self) -> None:
        """One loop iteration: fire what came due, then start what may start. A shared database that is away
        (PostgreSQL restarting) pauses firing and starting until it is back; nothing is lost meanwhile: the outcomes
        of jobs that finished are kept and written then, and the store's lock is re-taken (or, if another scheduler
        took it meanwhile, this one stops and leaves the store to it)."""
        now = self.clock()
        self.heartbeat = time.monotonic()
        if self._stopping:
            return
        try:
            if not self.store.hold_lock():
                log.error("another scheduler took over the state store while the database was away; stopping")
                self.stop()
                return
            while self._unrecorded:
                self._record(*self._unrecorded[0])
                self._unrecorded.pop(0)
            self.fire_due(now)
            self._dispatch(now)
        except DatabaseError as exc:
            if self._database_away is None:
                self._database_away = time.monotonic()
                log.warning("state store unavailable (%s); waiting for it", exc)
            return
        if self._database_away is not None:
            log.info("state store back after %.0f s", time.monotonic() - self._database_away)
            self._database_away = None

    def fire_due(self, now: datetime | None = None) -> None:
        """Record the runs of every slot that came due (without starting them). The store's index names the
        schedules whose next fire time has come; the others are not looked at."""
        now = now or self.clock()
        for schedule_id in self.store.due_schedules(now):
            sched = self.schedules.get(schedule_id)
            if sched is not None:  # a schedule still in the store but no longer in the configuration: left alone
                self._fire(sched, now)

    def _fire(self, sched: _Schedule, now: datetime) -> None:
        spec = sched.spec
        state = self.store.get_schedule(spec.schedule_id)
        if state["paused"] or not spec.enabled:
            return
        due: list[datetime] = []
        at = state["last_fire"]
        nxt = sched.trigger.next_after(at)
        while nxt <= now and len(due) < MAX_SLOT_SCAN:
            due.append(nxt)
            nxt = sched.trigger.next_after(nxt)
        if not due:
            self.store.set_fire_times(spec.schedule_id, None, nxt)
            return
        run, missed = self._apply_missed_policy(spec, due, now)
        for slot, reason in missed[-5:]:
            self._publish(ScheduleMissed(schedule_id=spec.schedule_id, slot=slot.isoformat(), reason=reason,
                                         missed_total=len(missed)))
        if missed:
            log.warning("schedule %s missed %d run(s) (%s)", spec.schedule_id, len(missed), missed[-1][1])
        for slot in run:
            recorded = 0
            for asset in spec.asset_specs:
                row = RunRow(f"{spec.schedule_id}|{slot.isoformat()}|{asset.asset_id}", spec.schedule_id,
                             asset.asset_id, slot, job_id_for(spec.schedule_id, asset.asset_id, slot), "pending",
                             0, slot + jitter_for(spec, slot))
                recorded += self.store.add_run(row, now)
            if recorded:
                log.info("schedule %s fired for %s", spec.schedule_id, slot.isoformat())
                self._publish(ScheduleStarted(schedule_id=spec.schedule_id, slot=slot.isoformat(),
                                              asset_ids=[a.asset_id for a in spec.asset_specs]))
        self.store.set_fire_times(spec.schedule_id, due[-1], nxt)

    def _apply_missed_policy(self, spec: TrainingSchedule, due: list[datetime], now: datetime):
        deadline = spec.starting_deadline_s
        late = [s for s in due if deadline is not None and (now - s).total_seconds() > deadline]
        eligible = [s for s in due if s not in late]
        if spec.missed_run_policy == "skip":
            tolerance = deadline if deadline is not None else max(self.on_time_tolerance_s, 2 * self.poll_interval_s)
            run = [s for s in eligible if (now - s).total_seconds() <= tolerance][-1:]
        elif spec.missed_run_policy == "latest":
            run = eligible[-1:]
        else:
            run = eligible[-spec.max_catchup_runs:]
        missed = [(s, "past the starting deadline" if s in late else f"missed-run policy {spec.missed_run_policy}")
                  for s in due if s not in run]
        return run, missed

    def _dispatch(self, now: datetime) -> None:
        for row in self.store.pending_runs():
            if row.not_before > now or row.run_key in self.running:
                continue
            sched = self.schedules.get(row.schedule_id)
            if sched is None:
                continue  # a schedule that was removed from the configuration
            # another slot of this schedule still running (the assets of one slot are one firing)
            busy = [r for r in self.running.values() if r.row.schedule_id == row.schedule_id and r.row.slot != row.slot]
            if busy and sched.spec.overlap_policy == "forbid":
                self.store.update_run(row.run_key, status="skipped", finished_at=now,
                                      error=f"overlap: {busy[0].row.job_id} still running")
                self._publish(ScheduleMissed(schedule_id=row.schedule_id, slot=row.slot.isoformat(),
                                             reason=f"overlap policy forbid ({busy[0].row.job_id} running)"))
                continue
            if busy and sched.spec.overlap_policy == "queue":
                continue
            if len(self.running) >= self.max_concurrent_jobs:
                return
            self._launch(row, sched.spec, now)

    def _launch(self, row: RunRow, spec: TrainingSchedule, now: datetime) -> None:
        asset = next((a for a in spec.asset_specs if a.asset_id == row.asset_id), None)
        if asset is None:
            self.store.update_run(row.run_key, status="failed", finished_at=now, error="asset no longer scheduled")
            return
        job = TrainingJob(job_id=row.job_id, asset_spec=asset, rl_config=spec.rl_config, timeout_s=spec.job_timeout_s,
                          evaluation=spec.evaluation, resources=spec.resources)
        self.store.update_run(row.run_key, status="running", started_at=now)
        log.info("starting %s (attempt %d%s)", row.job_id, row.attempts + 1,
                 f", resumed after {row.restarts} restart(s)" if row.restarts else "")
        # the run key makes a restarted run continue (and never register twice)
        task = asyncio.ensure_future(self.executor.run(job, row.run_key))
        self.running[row.run_key] = _Running(row, task)
        task.add_done_callback(lambda t, r=row, s=spec: self._finished(r, s, t))

    def _finished(self, row: RunRow, spec: TrainingSchedule, task: asyncio.Task) -> None:
        failpoint("finished")
        self.running.pop(row.run_key, None)
        now = self.clock()
        try:
            result = task.result()
        except BaseException as exc:  # a job must never take the scheduler down
            log.error("job %s crashed the orchestrator: %r", row.job_id, exc)
            result = TrainingResult(job_id=row.job_id, status="failed", failed_stage="orchestrator", error=str(exc))
        self.history.append(result)
        try:
            self._record(row, spec, result, now)
        except DatabaseError:  # written when the store is back (`tick`)
            self._unrecorded.append((row, spec, result, now))

    def _record(self, row: RunRow, spec: TrainingSchedule, result: TrainingResult, now: datetime) -> None:
        if result.status == "cancelled" and self._stopping:  # not an attempt: it resumes on the next start
            self.store.update_run(row.run_key, status="interrupted", error="stopped by shutdown; resumes on restart")
            log.info("job %s interrupted with a checkpoint; it resumes on the next start", row.job_id)
            self.store.prune(row.schedule_id)
            return
        attempts = row.attempts + 1  # kept on the row once written: a retried write counts it once
        if result.succeeded:
            self.store.update_run(row.run_key, status="completed", finished_at=now, attempts=attempts,
                                  model_version=result.model_version, error=None)
            log.info("job %s completed: %s", row.job_id, result.model_version)
        elif attempts <= spec.max_retries:
            delay = spec.retry_backoff_s * 2 ** (attempts - 1)
            self.store.update_run(row.run_key, status="pending", not_before=now + timedelta(seconds=delay),
                                  attempts=attempts, error=f"{result.failed_stage}: {result.error}")
            log.warning("job %s failed in %s; retry %d of %d in %.0f s", row.job_id, result.failed_stage,
                        attempts, spec.max_retries, delay)
        else:
            self.store.update_run(row.run_key, status="failed", finished_at=now, attempts=attempts,
                                  error=f"{result.failed_stage}: {result.error}")
            log.error("job %s failed in stage %s: %s", row.job_id, result.failed_stage, result.error)
        self.store.prune(row.schedule_id)
        row.attempts = attempts

    def _publish(self, event: Event) -> None:
        self.events.publish(event)

    # ------------------------------------------------------------------ lifecycle
    def start(self) -> None:
        """Take the state store's lock and recover runs a previous process left behind."""
        self.store.acquire()
        for row in self.store.recover_interrupted():
            log.info("resuming %s (left %s by a previous scheduler)", row.job_id, row.status)
        self.ready = True

    def stop(self) -> None:
        self._stopping = True
        if self._stop is not None:
            self._stop.set()

    async def wait_idle(self) -> None:
        """Wait for the running jobs (tests and graceful shutdown)."""
        while self.running:
            await asyncio.gather(*(r.task for r in list(self.running.values())), return_exceptions=True)
            await asyncio.sleep(0)

    async def shutdown(self) -> None:
        self._stopping = True
        if self.running:
            log.info("stopping: interrupting %d running job(s) so they checkpoint", len(self.running))
            for r in self.running.values():
                r.task.cancel()
            try:
                await asyncio.wait_for(self.wait_idle(), timeout=self.grace_period_s)
            except asyncio.TimeoutError:
                log.error("jobs did not stop within %.0f s", self.grace_period_s)
        self.ready = False
        self.store.release()

    async def run_forever(self) -> None:
        self._stop = asyncio.Event()
        self.start()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            try:
                loop.add_signal_handler(sig, self.stop)
            except (NotImplementedError, RuntimeError):  # not in the main thread
                pass
        server = None
        if self.health_port is not None:
            from .health import start_health_server

            server = start_health_server(self, self.health_host, self.health_port)
        self.events.start()  # listeners that deliver in the background (the webhook outbox) resume their backlog
        log.info("scheduler running %d schedule(s); stop with SIGTERM or Ctrl-C", len(self.schedules))
        try:
            while not self._stop.is_set():
                await self.tick()
                try:
                    await asyncio.wait_for(self._stop.wait(), timeout=self.poll_interval_s)
                except asyncio.TimeoutError:
                    pass
        finally:
            await self.shutdown()
            if server is not None:
                server.shutdown()
            self.events.close(5.0)
            self.executor.close()
            log.info("scheduler stopped")


def trigger_now(store: StateStore, schedule_id: str, now: datetime) -> list[str]:
    """Record a manual run of every asset of a schedule (the running scheduler picks it up)."""
    spec = TrainingSchedule.model_validate(store.get_schedule(schedule_id)["spec"])
    job_ids = []
    for asset in spec.asset_specs:
        job_id = job_id_for(schedule_id, asset.asset_id, now, manual=True)
        store.add_run(RunRow(f"{schedule_id}|manual:{now.isoformat()}|{asset.asset_id}", schedule_id, asset.asset_id,
                             now, job_id, "pending", 0, now), now)
        job_ids.append(job_id)
    return job_ids
