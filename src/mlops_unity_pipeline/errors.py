"""Error types. A `UserError` is a mistake the user can fix: the CLI prints it without a traceback."""

from __future__ import annotations


class UserError(Exception):
    """A problem with the user's input or machine, with a message that says how to fix it."""

    exit_code = 2

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return f"{self.message}\n  fix: {self.hint}" if self.hint else self.message


class SpecError(UserError):
    """An invalid asset spec, training config, job or schedule."""


class TrainerEnvError(UserError):
    """The managed ML-Agents trainer environment is missing or broken."""

    exit_code = 3


class StageError(Exception):
    """A pipeline stage failed; carries the stage name and the tail of its log."""

    def __init__(self, stage: str, message: str, *, log_tail: str = "") -> None:
        super().__init__(f"{stage} failed: {message}")
        self.stage = stage
        self.message = message
        self.log_tail = log_tail


class IntegrityError(Exception):
    """The control-plane log was edited, reordered or corrupted before its tail (`controlplane/chain.py`)."""
