"""Run training jobs on cron schedules: triggers decide when, the scheduler decides what runs."""

from .scheduler import TrainingScheduler
from .triggers import CronTrigger

__all__ = ["CronTrigger", "TrainingScheduler"]
