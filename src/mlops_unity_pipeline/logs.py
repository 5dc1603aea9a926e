"""Logging: console output for plain scripts (like the seeds'), and per-job log files that hold only their job's
lines even when jobs run side by side in one process (the scheduler's `max_concurrent_jobs`)."""

from __future__ import annotations

import contextvars
import logging
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

_MARK = "_unity_mlops_console"
TIMESTAMPED = "%(asctime)s %(levelname)-7s %(message)s"

# The job a log record belongs to: set around a job's work (and copied into the threads it starts).
current_job: contextvars.ContextVar[str | None] = contextvars.ContextVar("unity_mlops_job", default=None)


def ensure_console_logging(timestamps: bool = False) -> None:
    """Show the pipeline's INFO lines on stderr unless the application configured logging already. Long-running
    processes (the scheduler) stamp each line with the local time and level."""
    logger = logging.getLogger("unity_mlops")
    for h in logger.handlers:
        if getattr(h, _MARK, False):
            if timestamps:
                h.setFormatter(logging.Formatter(TIMESTAMPED))
            return
    if logging.getLogger().handlers:
        return
    handler = redacting(logging.StreamHandler())
    handler.setFormatter(logging.Formatter(TIMESTAMPED if timestamps else "%(message)s"))
    setattr(handler, _MARK, True)
    logger.addHandler(handler)
    _install_user_error_hook()
    if logger.level == logging.NOTSET or logger.level > logging.INFO:
        logger.setLevel(logging.INFO)


def _install_user_error_hook() -> None:
    """In a plain script (like the seeds'), a mistake the user can fix (`UserError`: a held scheduler store, a
    missing trainer environment) ends with its one-line message and exit code 2, not a traceback. Every other
    exception goes to the previous hook unchanged."""
    import os
    import sys

    from .errors import UserError

    previous = sys.excepthook
    if getattr(previous, "_unity_mlops", False):
        return

    def hook(kind, value, tb):
        if isinstance(value, UserError):
            print(f"error: {value}", file=sys.stderr)
            sys.stdout.flush()
            sys.stderr.flush()
            os._exit(value.exit_code)
        previous(kind, value, tb)

    hook._unity_mlops = True  # type: ignore[attr-defined]
    sys.excepthook = hook


class RedactSecrets(logging.Filter):
    """Mask known secret values in a record before a handler writes it (a library may log a URL with its
    credentials, e.g. httpx's request lines)."""

    def filter(self, record: logging.LogRecord) -> bool:
        from .redaction import redact

        message = record.getMessage()
        masked = redact(message)
        if masked != message:
            record.msg, record.args = masked, None
        return True


def redacting(handler: logging.Handler) -> logging.Handler:
    if not any(isinstance(f, RedactSecrets) for f in handler.filters):
        handler.addFilter(RedactSecrets())
    return handler


class _OnlyJob(logging.Filter):
    def __init__(self, job_id: str) -> None:
        super().__init__()
        self.job_id = job_id

    def filter(self, record: logging.LogRecord) -> bool:
        return current_job.get() == self.job_id


@contextmanager
def job_log(job_id: str, path: Path) -> Iterator[None]:
    """Within the block, this thread's log records are marked as the job's, and `path` receives exactly those."""
    token = current_job.set(job_id)
    handler = logging.FileHandler(path, encoding="utf-8")
    handler.setFormatter(logging.Formatter(TIMESTAMPED))
    handler.addFilter(_OnlyJob(job_id))
    redacting(handler)
    logger = logging.getLogger("unity_mlops")
    logger.addHandler(handler)
    if logger.level == logging.NOTSET or logger.level > logging.INFO:
        logger.setLevel(logging.INFO)
    try:
        yield
    finally:
        logger.removeHandler(handler)
        handler.close()
        current_job.reset(token)
