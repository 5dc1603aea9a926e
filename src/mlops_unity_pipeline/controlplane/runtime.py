"""`ControlPlaneRuntime`: a fail-closed control plane over the pipeline's actions.

Load time refuses (naming the bundle and the fix): an action without a schema, an invalid schema, a `$ref` that
does not resolve locally (nothing is fetched), an unknown `$schema` dialect, a root that is not an object, an
unknown requirement name, a destructive action without a human-approval requirement, and a transition that is
unguarded or unreachable.

At call time: inputs are validated (JSON Schema 2020-12, format checking on, non-finite numbers refused); facts come
only from events (a missing fact is false, facts can expire; TTLs are finite, positive and capped); a transition is
allowed only when all its requirements and every guardrail hold and, where required, a valid approval exists: an
Ed25519 signature by a key the bundle's `approval_policy.approvers` lists, over the exact action, payload hash,
bundle digest, expiry and a nonce, not made with the requester's own key, not expired, not used before. No
environment variable or tool argument makes anyone an approver. Every decision, ALLOW or HALT, is appended to the
event log with the facts it used and their `seq`.
"""

from __future__ import annotations

import asyncio
import hashlib
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

from jsonschema import Draft202012Validator

from .. import settings
from . import DEFAULT_BUNDLE as _DEFAULT_BUNDLE
from .bundle_schemas import APPROVAL, BundleSchemas, UnknownAction, _clip
from .eventlog import Checkpoints, canonical
from .keys import requester_key
from .sql_eventlog import open_event_log
from .state import MAX_APPROVAL_TTL_S, MAX_FACT_TTL_S, State, StateCache, check_ttl, expired

DEFAULT_BUNDLE = _DEFAULT_BUNDLE


def approval_message(subject: dict[str, Any], expires_at: str, nonce: str) -> bytes:
    """What an approver signs: the exact action, payload hash and bundle digest, the expiry and a nonce."""
    return canonical({"action_id": subject["action_id"], "payload_sha256": subject["payload_sha256"],
                      "bundle_digest": subject["bundle_digest"], "expires_at": expires_at, "nonce": nonce})


def payload_sha256(payload: dict[str, Any]) -> str:
    return hashlib.sha256(canonical(payload)).hexdigest()


def _now() -> datetime:
    return datetime.now(timezone.utc)


def default_checkpoints_path(log: Path) -> Path:
    """Outside the log's directory: whoever can rewrite the log directory cannot also remove the checkpoints."""
    return _beside_state("checkpoints", log, ".jsonl")


def default_snapshot_path(log: Path) -> Path:
    """The state snapshot (controlplane/state.py), kept with the checkpoints, outside the log's directory."""
    return _beside_state("snapshots", log, ".json")


def _beside_state(kind: str, log: Path, suffix: str) -> Path:
    from platformdirs import user_state_dir

    digest = hashlib.sha256(str(Path(log).resolve()).encode()).hexdigest()[:16]
    return Path(user_state_dir("unity-mlops")) / kind / f"{digest}{suffix}"


@dataclass
class Decision:
    allowed: bool
    action_id: str | None = None
    subject: str = "*"
    transition: str | None = None
    requires: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)
    reasons: list[str] = field(default_factory=list)
    facts_used: dict[str, int] = field(default_factory=dict)
    approval_id: str | None = None
    needs_approval: bool = False
    seq: int | None = None

    def __str__(self) -> str:
        why = "; ".join(self.reasons) if self.reasons else "all requirements hold"
        return f"{self.verdict} {self.action_id or '(no action)'} [{self.subject}]: {why}"

    @property
    def verdict(self) -> str:
        return "ALLOW" if self.allowed else "HALT"

    def to_dict(self) -> dict[str, Any]:
        return {"verdict": self.verdict, "action_id": self.action_id, "subject": self.subject,
                "transition": self.transition, "requires": self.requires, "missing": self.missing,
                "reasons": self.reasons, "facts_used": self.facts_used, "approval_id": self.approval_id,
                "seq": self.seq}


class ControlPlaneRuntime(BundleSchemas):
    def __init__(self, bundle_path: str | Path, schemas_dir: str | Path | None = None,
                 events_path: str | Path = "runtime/events.jsonl") -> None:
        self.bundle_path = Path(bundle_path)
        self.schemas_dir = Path(schemas_dir) if schemas_dir else self.bundle_path.parent / "schemas"
        self.events = open_event_log(events_path)  # a file, or the shared database's table
        self.state_cache = StateCache(self.events, default_snapshot_path(self.events.path))
        self.state_cache.prime_log()  # appends, too, start from the snapshot's position
        self.bundle: dict[str, Any] = {}
        self.actions: dict[str, dict[str, Any]] = {}
        self.schemas: dict[str, dict[str, Any]] = {}
        self.validators: dict[str, Draft202012Validator] = {}
        self.bundle_digest = ""

    def use_checkpoints(self, path: str | Path | None = None, public_keys: list[str] | None = None) -> Checkpoints:
        """Check the log against signed checkpoints: those in `path` (default: outside the log's directory, in the
        user's state directory) signed by `public_keys` plus the bundle's `checkpoint_keys`."""
        keys = [*(public_keys or []), *(self.bundle.get("checkpoint_keys") or [])]
        self.events.checkpoints = Checkpoints(path or default_checkpoints_path(self.events.path), keys)
        return self.events.checkpoints

    def rejected(self, action_id: str, payload: Any, errors: list[str]) -> dict[str, Any]:
        """What the log keeps of a rejected input: the errors (clipped), the input's sha256 and size — never the
        input itself, so a megabyte argument costs the log a few hundred bytes."""
        raw = canonical(payload)
        return {"action_id": _clip(str(action_id)), "errors": errors[:20],
                "input_sha256": hashlib.sha256(raw).hexdigest(), "input_bytes": len(raw)}

    # ------------------------------------------------------------------ events
    def append_sync(self, event: dict[str, Any], *, idempotency_key: str | None = None,
                    expected_seq: int | None = None) -> dict[str, Any]:
        event = dict(event)
        etype = event.pop("event_type", None) or event.pop("type", None) or "event"
        return self.events.append(etype, event, idempotency_key=idempotency_key, expected_seq=expected_seq,
                                  bundle_digest=self.bundle_digest or None)

    async def append_event(self, event: dict[str, Any], *, idempotency_key: str | None = None,
                           expected_seq: int | None = None) -> dict[str, Any]:
        return await asyncio.to_thread(self.append_sync, event, idempotency_key=idempotency_key,
                                       expected_seq=expected_seq)

    def replay_events(self) -> State:
        """The state at the log's head (folded incrementally: controlplane/state.py)."""
        return self.state_cache.state(self._facts_declared() if self.bundle else {})

    def verify(self, expect_head: tuple[int, str] | None = None) -> dict[str, Any]:
        """The whole chain against the signed checkpoints and an expected head, and the state snapshot against the
        state the log establishes at its position."""
        info = self.events.verify(expect_head=expect_head, checkpoints=self.events.checkpoints)
        snap = self.state_cache.check_snapshot(self._facts_declared() if self.bundle else {})
        return {**info, "snapshot": snap}

    # ------------------------------------------------------------------ decisions
    def evaluate_transition_requirements(self, requires: list[str], state: State, subject: str = "*",
                                         action_id: str | None = None, transition: str | None = None) -> Decision:
        d = Decision(allowed=True, action_id=action_id, subject=subject, transition=transition,
                     requires=list(requires))
        now = _now()
        for r in requires:
            if r == APPROVAL:
                d.needs_approval = True
                continue
            f = state.fact(r, subject, now)
            if f is None:
                d.allowed = False
                d.missing.append(r)
                d.reasons.append(f"fact {r!r} is not established (or expired)")
            else:
                d.facts_used[r] = f.seq
        return d

    def enforce_guardrails_and_hitl(self, decision: Decision, state: State, payload: dict[str, Any] | None = None,
                                    approval_id: str | None = None) -> Decision:
        now = _now()
        for g in self.bundle.get("guardrails") or []:
            f = state.fact(g["fact"], decision.subject, now)
            if f is None:
                decision.allowed = False
                if g["fact"] not in decision.missing:
                    decision.missing.append(g["fact"])
                decision.reasons.append(f"guardrail {g['id']!r}: fact {g['fact']!r} is not established")
            else:
                decision.facts_used[g["fact"]] = f.seq
        if decision.needs_approval:
            reason = self._check_approval(decision, state, payload or {}, approval_id, now)
            if reason:
                decision.allowed = False
                decision.missing.append(APPROVAL)
                decision.reasons.append(reason)
        ev = self.append_sync({"event_type": "decision", **decision.to_dict()})
        decision.seq = ev["seq"]
        if decision.allowed and decision.approval_id:
            # consume the approval before anything runs; the idempotency key makes the first consumer win a race
            used = self.append_sync({"event_type": "approval.used", "approval_id": decision.approval_id,
                                     "decision_seq": decision.seq}, idempotency_key=f"use:{decision.approval_id}")
            if used["payload"]["decision_seq"] != decision.seq:
                decision.allowed = False
                decision.reasons.append(f"approval {decision.approval_id} was already used by decision "
                                        f"#{used['payload']['decision_seq']}")
                decision.seq = self.append_sync({"event_type": "decision", **decision.to_dict()})["seq"]
        return decision

    def approver_keys(self) -> dict[str, str]:
        """public key -> name, from the bundle's policy (`approvers: [{name, key}]`). Empty: nobody can approve."""
        out = {}
        for a in (self.bundle.get("approval_policy") or {}).get("approvers") or []:
            if isinstance(a, dict) and a.get("key"):
                out[str(a["key"]).strip()] = str(a.get("name") or a["key"][:12])
        return out

    def _check_approval(self, d: Decision, state: State, payload: dict[str, Any], approval_id: str | None,
                        now: datetime) -> str | None:
        from .keys import verify_signature

        requester = requester_key()
        wanted = {"action_id": d.action_id, "payload_sha256": payload_sha256(payload),
                  "bundle_digest": self.bundle_digest}
        allowed = self.approver_keys()
        if not allowed:
            return ("the bundle's approval_policy lists no approver keys, so no approval can be valid "
                    "(`unity-mlops control-plane keygen NAME`, then add {name, key} under approval_policy.approvers)")
        candidates = [a for a in state.approvals.values()
                      if isinstance(a.get("subject"), dict) and a["subject"].get("action_id") == d.action_id]
        if approval_id:
            candidates = [a for a in candidates if a.get("approval_id") == approval_id]
        if not candidates:
            return f"no approval recorded for {d.action_id} (`unity-mlops control-plane approve {d.action_id} ...`)"
        problems = []
        for a in sorted(candidates, key=lambda a: -a["seq"]):
            key = str(a.get("approver_key") or "")
            if a["subject"] != wanted:
                problems.append(f"approval {a.get('approval_id')} is for another payload or bundle")
            elif not verify_signature(key, approval_message(a["subject"], str(a.get("expires_at")),
                                                            str(a.get("nonce"))), a.get("signature")):
                problems.append(f"approval {a.get('approval_id')} does not carry a valid signature")
            elif key not in allowed:
                problems.append(f"approval {a.get('approval_id')} is signed by a key that is not in the approval "
                                "policy")
            elif expired(a.get("expires_at"), now):
                problems.append(f"approval {a.get('approval_id')} expired at {a.get('expires_at')}")
            elif a.get("approval_id") in state.used_approvals:
                problems.append(f"approval {a.get('approval_id')} was already used")
            elif requester is not None and key == requester:
                problems.append(f"approval {a.get('approval_id')} is a self-approval (signed with the requester's "
                                "own key)")
            else:
                d.approval_id = a["approval_id"]
                return None
        return "; ".join(problems)

    def sign_approval(self, action_id: str, payload: dict[str, Any], key: Any, ttl_s: float | None = None,
                      reason: str = "") -> dict[str, Any]:
        """An approval signed with `key` (an Ed25519 private key) for exactly this action, payload and bundle.
        Made where the key is (the approver's terminal); recording it needs no secret."""
        from .keys import public_key_text, sign

        if action_id not in self.actions:
            raise UnknownAction(action_id)
        errors = self.validate_tool_input(action_id, payload)
        if errors:
            raise ValueError("the payload to approve is invalid: " + "; ".join(errors))
        policy_ttl = (self.bundle.get("approval_policy") or {}).get("ttl_s", 3600)
        ttl = check_ttl(policy_ttl if ttl_s is None else ttl_s, "approval", MAX_APPROVAL_TTL_S)
        subject = {"action_id": action_id, "payload_sha256": payload_sha256(payload),
                   "bundle_digest": self.bundle_digest}
        nonce = uuid.uuid4().hex
        expires_at = (_now() + timedelta(seconds=ttl)).isoformat()
        pub = public_key_text(key)
        return {"approval_id": f"apr_{nonce}", "nonce": nonce, "subject": subject, "expires_at": expires_at,
                "approver_key": pub, "approver": self.approver_keys().get(pub, f"key:{pub[:12]}"),
                "signature": sign(key, approval_message(subject, expires_at, nonce)), "reason": reason}

    def record_approval(self, approval: dict[str, Any]) -> dict[str, Any]:
        """Append a signed approval (from `sign_approval`, possibly made on another machine). Its signature is
        checked when it is used, against the policy of that moment."""
        fields = ("approval_id", "nonce", "subject", "expires_at", "approver_key", "approver", "signature", "reason")
        return self.append_sync({"event_type": "approval.granted", **{k: approval.get(k) for k in fields}},
                                idempotency_key=f"approval:{approval.get('approval_id')}")

    def grant_approval(self, action_id: str, payload: dict[str, Any], key: Any, ttl_s: float | None = None,
                       reason: str = "") -> dict[str, Any]:
        """Sign and record an approval in one step (the approver's own process)."""
        return self.record_approval(self.sign_approval(action_id, payload, key, ttl_s, reason))

    def assert_fact(self, fact: str, value: bool = True, subject: str = "*", ttl_s: float | None = None,
                    reason: str = "") -> dict[str, Any]:
        spec = self._facts_declared().get(fact)
        if spec is None:
            raise KeyError(f"unknown fact {fact!r}")
        etype = spec["established_by"][0]
        payload = {"event_type": etype, "fact": fact, "value": value, "subject": subject, "actor": settings.actor(),
                   "reason": reason}
        if ttl_s is not None:
            payload["ttl_s"] = check_ttl(ttl_s, f"fact {fact!r}", MAX_FACT_TTL_S)
        return self.append_sync(payload)

    # ------------------------------------------------------------------ the gate for one call
    def transition_for(self, action_id: str, payload: dict[str, Any]) -> dict[str, Any] | None:
        for t in self._transitions():
            if t.get("action") == action_id and all(payload.get(k) == v for k, v in (t.get("match") or {}).items()):
                return t
        return None

    def gate(self, action_id: str, payload: dict[str, Any], approval_id: str | None = None) -> Decision:
        """Validate-then-decide for one invocation (validation errors are a HALT too)."""
        errors = self.validate_tool_input(action_id, payload)
        if errors:
            d = Decision(False, action_id, reasons=[f"invalid input: {e}" for e in errors[:20]])
            d.seq = self.append_sync({"event_type": "decision", **d.to_dict(),
                                      "input": self.rejected(action_id, payload, errors)})["seq"]
            return d
        state = self.replay_events()
        t = self.transition_for(action_id, payload)
        subject_field = (t or {}).get("subject_field") or "version"
        subject = str(payload.get(subject_field) or payload.get("asset") or "*")
        if t is None:
            d = self.evaluate_transition_requirements([], state, subject, action_id)
        else:
            d = self.evaluate_transition_requirements(t["requires"], state, subject, action_id, t["id"])
            sources = t["from"] if isinstance(t["from"], list) else [t["from"]]
            current = state.subject_states.get(subject, (self.bundle.get("workflow") or {}).get("initial"))
            if current not in sources:
                d.allowed = False
                d.reasons.append(f"{subject} is in state {current!r}; transition {t['id']!r} starts from {sources}")
        return self.enforce_guardrails_and_hitl(d, state, payload, approval_id)

    def record_staged(self, version: str) -> None:
        """A version now holds staging: the fact production promotions require (`model_in_staging`)."""
        self.append_sync({"event_type": "model.staged", "fact": "model_in_staging", "subject": version, "value": True})

    def record_outcome(self, decision: Decision, payload: dict[str, Any], ok: bool, detail: dict[str, Any]) -> None:
        """After an allowed action ran: move the workflow state and record the outcome."""
        if ok and decision.transition:
            t = next(t for t in self._transitions() if t.get("id") == decision.transition)
            self.append_sync({"event_type": "transition.executed", "transition": t["id"], "subject": decision.subject,
                              "to": t["to"], "decision_seq": decision.seq})
        self.append_sync({"event_type": "action.completed" if ok else "action.failed",
                          "action_id": decision.action_id, "decision_seq": decision.seq, "detail": detail})
