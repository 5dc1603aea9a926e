"""The promotion ledger as governance sees it: it lives with the registry (`registry.ledger`), re-exported here."""

from ..registry.ledger import ALIASES, MOVES, GovernanceError, Ledger, LedgerEntry

__all__ = ["ALIASES", "MOVES", "GovernanceError", "Ledger", "LedgerEntry"]
