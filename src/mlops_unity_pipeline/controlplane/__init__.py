"""The fail-closed control plane: bundle, schemas, hash-chained event log, facts, approvals, MCP server.

Its names are imported when first used (PEP 562), so a command that only needs the chain's `IntegrityError` (every
CLI process, to report a tampered log) does not pay for JSON Schema and SQL at start."""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import Any

DEFAULT_BUNDLE = Path(__file__).with_name("bundle") / "bundle.yaml"  # the shipped bundle (its schemas beside it)

_WHERE = {"BundleError": "bundle_schemas", "UnknownAction": "bundle_schemas", "ConcurrencyError": "chain",
          "IntegrityError": "chain", "EventLog": "eventlog", "ControlPlaneRuntime": "runtime", "Decision": "runtime",
          "State": "state"}

__all__ = ["DEFAULT_BUNDLE", *sorted(_WHERE)]


def __getattr__(name: str) -> Any:
    if name not in _WHERE:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f".{_WHERE[name]}", __name__), name)
