"""How many threads the PPO update may use, decided again before every update.

Measured on a 2-core machine (docs/benchmarks/fast-trainer.md#under-contention-and-two-jobs-at-once): on idle cores
two torch threads make the run 1.26x faster than one; with two other busy processes on the same cores the same two
threads make it 8x *slower* (the update's many small parallel regions wait at barriers for a thread the OS has
descheduled), while one thread loses only a third. So the update takes a second thread only where one is idle: at
most the CPUs this process may use (affinity, cgroup quota, a Ray task's OMP_NUM_THREADS: `settings.cpu_budget()`),
and at most the host's CPUs minus the tasks the kernel reports runnable right now besides this one — other jobs of
this scheduler (threads of this very process included), other trainers, anything. The count is read from
/proc/loadavg (instantaneous, unlike the load averages) between rollout and update, when this job's own torch
threads are idle, and smoothed over a few updates; where it cannot be read, one thread."""

from __future__ import annotations

import os
from pathlib import Path

from .. import settings

MAX_THREADS = 2  # more did not help at this model size (a 128x128 MLP, minibatches of 256-1024)
LOADAVG = Path("/proc/loadavg")


def runnable_besides_me(loadavg: Path = LOADAVG) -> int | None:
    """Tasks runnable now on the host, this thread excluded (None where the kernel does not say)."""
    try:
        running = loadavg.read_text().split()[3].split("/")[0]
        return max(0, int(running) - 1)
    except (OSError, IndexError, ValueError):
        return None


class UpdateThreads:
    def __init__(self, budget: int | None = None, loadavg: Path = LOADAVG) -> None:
        self.budget = min(MAX_THREADS, budget if budget is not None else settings.cpu_budget())
        self.host_cpus = os.cpu_count() or 1
        self.loadavg = loadavg
        self.busy: float | None = None  # smoothed count of the other runnable tasks

    def choose(self) -> int:
        if self.budget <= 1:
            return 1
        others = runnable_besides_me(self.loadavg)
        if others is None:
            return 1
        self.busy = others if self.busy is None else 0.5 * self.busy + 0.5 * others
        idle = self.host_cpus - int(self.busy + 0.5)
        return max(1, min(self.budget, idle))
