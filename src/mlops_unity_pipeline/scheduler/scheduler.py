"""`TrainingScheduler`: runs each schedule's assets through the orchestrator at its cron times, forever.

A failing job is logged and the scheduler carries on with the next one. SIGTERM/SIGINT stop the loop: no new
jobs start, and a running training is stopped with SIGINT (ML-Agents saves a checkpoint) so that re-running the
same job id resumes it.
"""

from __future__ import annotations

import asyncio
import logging
import signal
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timezone

from ..logs import ensure_console_logging
from ..pipeline.orchestrator import UnityMLOpsOrchestrator
from ..specs import TrainingJob, TrainingResult, TrainingSchedule
from .triggers import CronTrigger

log = logging.getLogger("unity_mlops.scheduler")

Clock = Callable[[], datetime]


def utc_now() -> datetime:
    return datetime.now(timezone.utc)


@dataclass
class _Entry:
    schedule: TrainingSchedule
    trigger: CronTrigger
    next_fire: datetime


def job_id_for(schedule: TrainingSchedule, asset_id: str, slot: datetime) -> str:
    """Stable per (schedule, asset, slot): a restarted run of the same slot resumes instead of starting over."""
    return f"{schedule.schedule_id}-{asset_id}-{slot.astimezone(timezone.utc):%Y%m%dT%H%MZ}"


class TrainingScheduler:
    def __init__(self, orchestrator: UnityMLOpsOrchestrator, *, clock: Clock = utc_now,
                 poll_interval_s: float = 1.0) -> None:
        self.orchestrator = orchestrator
        self.clock = clock
        self.poll_interval_s = poll_interval_s
        self.entries: dict[str, _Entry] = {}
        self.history: list[TrainingResult] = []
        self._stop = asyncio.Event()
        ensure_console_logging()

    def add_schedule(self, schedule: TrainingSchedule) -> None:
        if schedule.schedule_id in self.entries:
            raise ValueError(f"schedule {schedule.schedule_id!r} is already added")
        trigger = CronTrigger(schedule.cron_expression, schedule.timezone)
        entry = _Entry(schedule, trigger, trigger.next_after(self.clock()))
        self.entries[schedule.schedule_id] = entry
        log.info("schedule %s (%s %s): next run at %s", schedule.schedule_id, schedule.cron_expression,
                 schedule.timezone, entry.next_fire.isoformat())

    def stop(self) -> None:
        self._stop.set()

    async def run_due(self) -> list[TrainingResult]:
        """Run every schedule whose fire time has come (once per slot; missed slots are not replayed)."""
        now = self.clock()
        results = []
        for entry in list(self.entries.values()):
            if entry.next_fire > now or not entry.schedule.enabled:
                if entry.next_fire <= now:
                    entry.next_fire = entry.trigger.next_after(now)
                continue
            slot = entry.next_fire
            entry.next_fire = entry.trigger.next_after(now)
            log.info("schedule %s fired for slot %s", entry.schedule.schedule_id, slot.isoformat())
            for asset in entry.schedule.asset_specs:
                if self._stop.is_set():
                    return results
                job = TrainingJob(job_id=job_id_for(entry.schedule, asset.asset_id, slot), asset_spec=asset,
                                  rl_config=entry.schedule.rl_config)
                results.append(await self._run(job))
        return results

    async def _run(self, job: TrainingJob) -> TrainingResult:
        task = asyncio.ensure_future(self.orchestrator.execute_training_job(job))
        stopper = asyncio.ensure_future(self._stop.wait())
        done, _ = await asyncio.wait({task, stopper}, return_when=asyncio.FIRST_COMPLETED)
        if task not in done:
            task.cancel()  # the orchestrator stops the trainer with SIGINT and returns a "cancelled" result
        stopper.cancel()
        try:
            result = await task
        except Exception as exc:  # a job must never take the scheduler down
            log.exception("job %s crashed the orchestrator", job.job_id)
            result = TrainingResult(job_id=job.job_id, status="failed", failed_stage="orchestrator", error=str(exc))
        if result.succeeded:
            log.info("job %s completed: %s", job.job_id, result.model_version)
        else:
            log.error("job %s %s in stage %s: %s", job.job_id, result.status, result.failed_stage, result.error)
        self.history.append(result)
        return result

    async def run_forever(self) -> None:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            try:
                loop.add_signal_handler(sig, self.stop)
            except (NotImplementedError, RuntimeError):  # not the main thread
                pass
        log.info("scheduler running %d schedule(s); stop with SIGTERM or Ctrl-C", len(self.entries))
        while not self._stop.is_set():
            await self.run_due()
            try:
                await asyncio.wait_for(self._stop.wait(), timeout=self.poll_interval_s)
            except asyncio.TimeoutError:
                pass
        log.info("scheduler stopped")
