"""Model governance: aliases and the promotion ledger, gates, rollback with incidents, evaluation reports."""

from .gates import GateConfig, GateReport, GateResult, run_gates
from .ledger import ALIASES, GovernanceError, Ledger
from .service import Governance, PromotionBlocked

__all__ = ["ALIASES", "GateConfig", "GateReport", "GateResult", "Governance", "GovernanceError", "Ledger",
           "PromotionBlocked", "run_gates"]
