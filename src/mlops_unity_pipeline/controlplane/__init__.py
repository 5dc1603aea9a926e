"""The fail-closed control plane: bundle, schemas, hash-chained event log, facts, approvals, MCP server."""

from .eventlog import ConcurrencyError, EventLog, IntegrityError
from .runtime import BundleError, ControlPlaneRuntime, Decision, State, UnknownAction

__all__ = ["BundleError", "ConcurrencyError", "ControlPlaneRuntime", "Decision", "EventLog", "IntegrityError",
           "State", "UnknownAction"]
