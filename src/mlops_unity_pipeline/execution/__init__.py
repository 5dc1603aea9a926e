"""Where a job runs: in this process (`local`, the default) or on a Ray cluster (`ray`). The scheduler submits
every job through an `Executor`; the job itself is the same pipeline either way."""

from .base import Executor, LocalExecutor, executor_from_config

__all__ = ["Executor", "LocalExecutor", "executor_from_config"]
