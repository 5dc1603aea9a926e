"""The fail-closed control plane: bundle, schemas, hash-chained event log, facts, approvals, MCP server."""

from .bundle_schemas import BundleError, UnknownAction
from .eventlog import ConcurrencyError, EventLog, IntegrityError
from .runtime import ControlPlaneRuntime, Decision
from .state import State

__all__ = ["BundleError", "ConcurrencyError", "ControlPlaneRuntime", "Decision", "EventLog", "IntegrityError",
           "State", "UnknownAction"]
