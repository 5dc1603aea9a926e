"""Promotion, rollback and freezes: the seed's governance procedure as operations.

* `promote(v, to="staging")`: the ONNX contract gate only.
* `promote(v, to="production")`: `v` must hold `staging`; every gate must pass against the current production
  version; a blocked attempt is recorded in the ledger with the evidence, and nothing moves.
* `rollback(asset)`: re-point `production` to the last known-good production version, open an incident record
  (failed version, its metrics, reason, corrective action) and freeze the asset until someone unfreezes it after
  the root-cause analysis (seed 000, "Rollback procedure").
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .. import settings
from ..events import AssetEvent, AssetFrozen, AssetUnfrozen, EventBus, ModelPromoted, ModelRolledBack
from ..registry.base import ModelRegistry, ModelVersion, registry_asset_name
from .gates import GateConfig, GateReport, contract_gate, run_gates, spec_of
from .ledger import LedgerEntry


class PromotionBlocked(Exception):
    def __init__(self, report: GateReport) -> None:
        lines = [f"{r.name}: {r.message}" for r in report.failures()]
        super().__init__(f"promotion of {report.challenger} blocked (baseline {report.baseline}):\n  "
                         + "\n  ".join(lines))
        self.report = report


@dataclass
class PromotionOutcome:
    entry: LedgerEntry
    report: GateReport


class ApprovalHook:
    """Gates consequential moves (production promotions, rollbacks) through the control plane."""

    def __init__(self, runtime: Any) -> None:
        self.runtime = runtime

    def check(self, action_id: str, payload: dict[str, Any]) -> Any:
        from .ledger import GovernanceError

        decision = self.runtime.gate(action_id, payload)
        if not decision.allowed:
            raise GovernanceError(f"control plane HALT for {action_id} (decision #{decision.seq}): "
                                  + "; ".join(decision.reasons))
        return decision

    def done(self, decision: Any, payload: dict[str, Any], detail: dict[str, Any]) -> None:
        if payload.get("to") == "staging":
            self.runtime.record_staged(payload["version"])
        self.runtime.record_outcome(decision, payload, True, detail)


def _same_contract(candidate: ModelVersion, baseline: ModelVersion) -> None:
    """Gates compare two policies on one task: a model for other observations or actions cannot replace it."""
    from .ledger import GovernanceError

    try:
        a, b = spec_of(candidate), spec_of(baseline)
    except (OSError, ValueError, KeyError):
        return  # no behaviour recorded to compare: the contract gate reports it
    if a != b:
        raise GovernanceError(
            f"{candidate.version} cannot replace production {baseline.version}: their contracts differ "
            f"(candidate {candidate.behavior_name}: {a.describe()}; production {baseline.behavior_name}: "
            f"{b.describe()}); register it under another asset name")


class Governance:
    def __init__(self, registry: ModelRegistry, gate_config: GateConfig | None = None,
                 retrain: Callable[..., Path] | None = None,
                 approval_hook: ApprovalHook | None = None, workspace: Path | None = None,
                 events: EventBus | None = None) -> None:
        self.registry = registry
        self.events = events or EventBus()  # model.promoted, model.rolled_back, asset.frozen, asset.unfrozen
        self.workspace = workspace  # where a gate rebuilds a build that is gone (<workspace>/_builds)
        self.ledger = registry.ledger
        self.gate_config = gate_config or GateConfig()
        self.retrain = retrain
        self.approval_hook = approval_hook

    def promote(self, version: str, to: str, *, reason: str = "", actor: str | None = None,
                gate_config: GateConfig | None = None) -> PromotionOutcome:
        from .ledger import GovernanceError

        v = self.registry.get(version)
        asset = v.asset_name
        aliases = self.ledger.aliases(asset)
        frozen = self.ledger.frozen(asset)
        if frozen:
            raise GovernanceError(f"asset {asset} is frozen since {frozen['since']} ({frozen['reason']}); "
                                  f"run `unity-mlops models unfreeze {asset}` after the root-cause analysis")
        if aliases.get(to) == version:
            raise GovernanceError(f"{version} already holds {to}")
        if to == "staging":
            report = GateReport(version, "-", [contract_gate(v, spec_of(v))])
        elif to == "production":
            if aliases.get("staging") != version:
                raise GovernanceError(f"{version} must hold the staging alias before production "
                                      f"(staging is {aliases.get('staging') or 'empty'}); promote it to staging first")
            baseline = self.registry.get(aliases["production"]) if aliases.get("production") else None
            if baseline is not None:
                _same_contract(v, baseline)
            report = run_gates(v, baseline, gate_config or self.gate_config, self.retrain, self.workspace)
        else:
            raise GovernanceError(f"--to must be staging or production, got {to!r}")
        evidence = report.to_dict()
        if to == "production" and report.passed:  # the seed's criterion: report and changelog linked to the version
            from .report import report_digest, write_report

            md = write_report(self.registry, version, promotion=report.to_dict())
            evidence["report"] = {"path": str(md), "sha256": report_digest(md)}
        if not report.passed:
            self.ledger.record(asset, "promotion-blocked", to, aliases.get(to), version, evidence,
                               reason or "gates failed", actor)
            raise PromotionBlocked(report)
        ticket = None
        if self.approval_hook is not None:  # the bundle says which moves need which facts and approvals
            ticket = self.approval_hook.check("model.promote", {"version": version, "to": to})
            evidence["control_plane_decision_seq"] = ticket.seq
        entry = self.ledger.move_alias(asset, to, version, action="promote", reason=reason or f"promote to {to}",
                                       evidence=evidence, actor=actor)
        if ticket is not None:
            self.approval_hook.done(ticket, {"version": version, "to": to}, {"ledger_seq": entry.seq})
        self._mirror(version, to)
        self._publish(ModelPromoted, entry, version=version, alias=to, from_version=entry.from_version)
        return PromotionOutcome(entry, report)

    def _publish(self, kind: type[AssetEvent], entry: LedgerEntry, **fields: Any) -> None:
        """One event per ledger entry (its key), so a retried delivery is one message."""
        self.events.publish(kind(asset_name=entry.asset_name, actor=entry.actor, reason=entry.reason,
                                 ledger_seq=entry.seq, key=f"ledger:{entry.asset_name}:{entry.seq}", **fields))

    def _mirror(self, version: str, alias: str) -> None:
        from .ledger import GovernanceError

        try:
            self.registry.mirror_alias(version, alias)  # e.g. Vertex AI's aliases follow the ledger
        except Exception as exc:  # the ledger already moved: say so, and how to see the drift
            raise GovernanceError(f"{alias} moved to {version} in the local ledger, but the Vertex AI alias could not "
                                  f"be moved ({exc}); `unity-mlops models sync` shows the drift") from None

    def rollback(self, asset_name: str, *, reason: str, corrective_action: str = "",
                 actor: str | None = None) -> LedgerEntry:
        from .ledger import GovernanceError

        asset = registry_asset_name(asset_name)
        current = self.ledger.aliases(asset).get("production")
        if current is None:
            raise GovernanceError(f"asset {asset} has no production version to roll back")
        target = self.ledger.last_known_good(asset)
        if target is None:
            raise GovernanceError(f"asset {asset} has no earlier known-good production version to roll back to")
        ticket, hook_payload = None, {"asset": asset, "version": current, "reason": reason}
        if self.approval_hook is not None:
            ticket = self.approval_hook.check("model.rollback", hook_payload)
        failed = self.registry.get(current)
        entry = self.ledger.move_alias(
            asset, "production", target, action="rollback", reason=reason, actor=actor or settings.actor(),
            evidence={"failed_version": current}, respect_freeze=False,
            incident={"failed_version": current, "metrics": failed.metrics.get("evaluation", {}),
                      "corrective_action": corrective_action},
        )
        if ticket is not None:
            self.approval_hook.done(ticket, hook_payload, {"ledger_seq": entry.seq, "to": target})
        self._mirror(target, "production")
        self._publish(ModelRolledBack, entry, version=target, from_version=current)
        return entry

    def freeze(self, asset_name: str, reason: str, actor: str | None = None) -> LedgerEntry:
        entry = self.ledger.set_frozen(asset_name, True, reason, actor)
        self._publish(AssetFrozen, entry)
        return entry

    def unfreeze(self, asset_name: str, reason: str, actor: str | None = None) -> LedgerEntry:
        entry = self.ledger.set_frozen(asset_name, False, reason, actor)
        self._publish(AssetUnfrozen, entry)
        return entry
