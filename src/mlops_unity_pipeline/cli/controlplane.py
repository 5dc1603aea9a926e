"""`control-plane`: the MCP server, the event log, keys, approvals and facts."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from ..app import App
from ..errors import UserError
from .options import workspace


def _control_plane(args: argparse.Namespace):
    return App.from_args(args).control_plane()


def _cmd_cp_serve(args: argparse.Namespace) -> int:
    import asyncio

    from ..app.actions import PipelineActions
    from ..controlplane.mcp_server import serve_stdio

    app = App.from_args(args)
    rt = app.control_plane()
    asyncio.run(serve_stdio(rt, PipelineActions(rt, app.paths.workspace, app.registry_uri)))
    return 0


def _cmd_cp_verify(args: argparse.Namespace) -> int:
    from ..controlplane.eventlog import IntegrityError

    rt = _control_plane(args)
    expect = None
    if args.expect_head:
        seq, _, head = args.expect_head.partition(":")
        if not seq.isdigit() or len(head) != 64:
            raise UserError(f"--expect-head {args.expect_head!r} is not SEQ:HASH",
                            hint="copy it from a previous `verify` or `checkpoint` output, e.g. 120:3fa9...")
        expect = (int(seq), head)
    try:
        info = rt.verify(expect_head=expect)
    except IntegrityError as exc:
        print(f"TAMPERED OR CORRUPT: {exc}", file=sys.stderr)
        return 1
    snap = f", state snapshot at event {info['snapshot']['seq']} matches" if info["snapshot"] else ""
    print(f"ok: {info['events']} events, hash chain intact, {info['checkpoints']} signed checkpoint(s) hold{snap}, "
          f"head {info['events']}:{info['head']}")
    return 0


def _cmd_cp_keygen(args: argparse.Namespace) -> int:
    from platformdirs import user_config_dir

    from ..controlplane.keys import KeyFileError, generate

    try:
        path, pub = generate(args.dir or Path(user_config_dir("unity-mlops")) / "keys", args.name)
    except KeyFileError as exc:
        raise UserError(str(exc)) from None
    print(f"private key {path} (keep it; mode 0600)\npublic key  {pub}")
    return 0


def _cmd_cp_checkpoint(args: argparse.Namespace) -> int:
    from ..controlplane.keys import KeyFileError, load_private

    rt = _control_plane(args)
    try:
        key = load_private(args.operator_key)
    except KeyFileError as exc:
        raise UserError(str(exc)) from None
    cp = rt.events.checkpoints.sign(rt.events, key)
    print(f"checkpoint {cp['seq']}:{cp['head']} signed into {rt.events.checkpoints.path}")
    return 0


def _cmd_cp_check(args: argparse.Namespace) -> int:
    rt = _control_plane(args)
    print(f"ok: bundle {rt.bundle_path} ({len(rt.actions)} actions, digest {rt.bundle_digest[:16]})")
    return 0


def _cmd_cp_approve(args: argparse.Namespace) -> int:
    from ..controlplane.bundle_schemas import UnknownAction
    from ..controlplane.keys import KeyFileError, load_private

    rt = _control_plane(args)
    try:
        key = load_private(args.key)
        payload = json.loads(args.payload)
        approval = rt.sign_approval(args.action_id, payload, key, args.ttl, args.reason or "")
    except KeyFileError as exc:
        raise UserError(str(exc), hint="create one with `unity-mlops control-plane keygen NAME`") from None
    except (ValueError, UnknownAction) as exc:
        raise UserError(str(exc), hint="--ttl takes seconds, e.g. --ttl 3600") from None
    if args.sign_only:  # to hand to an agent, which records it with the approval.grant tool
        print(json.dumps({"approval": approval}))
        return 0
    ev = rt.record_approval(approval)
    print(f"approved {args.action_id} as {approval['approver']}: {approval['approval_id']} "
          f"(expires {approval['expires_at']}, seq {ev['seq']})")
    return 0


def _cmd_cp_assert(args: argparse.Namespace) -> int:
    rt = _control_plane(args)
    try:
        ev = rt.assert_fact(args.fact, not args.false, args.subject, args.ttl, args.reason or "")
    except KeyError as exc:
        raise UserError(str(exc)) from None
    except ValueError as exc:
        raise UserError(str(exc), hint="--ttl takes seconds, e.g. --ttl 86400") from None
    print(f"{args.fact}={not args.false} for {args.subject} (seq {ev['seq']})")
    return 0



def register(sub: argparse._SubParsersAction) -> None:
    cp = sub.add_parser("control-plane", help="the fail-closed control plane (MCP tools, event log, approvals)",
                        description="Bundle: --bundle, $UNITY_MLOPS_CONTROL_PLANE_BUNDLE, or the shipped default. "
                                    "Events: --events, $UNITY_MLOPS_CONTROL_PLANE_EVENTS, or "
                                    "<workspace>/_state/control-plane.jsonl. "
                                    "Approvals are Ed25519 signatures by keys the bundle lists; the requester's "
                                    "key: $UNITY_MLOPS_IDENTITY_KEY.")
    cps = cp.add_subparsers(dest="cp_command", metavar="ACTION", required=True)
    for name, helptext in (("serve", "serve the actions as MCP tools over stdio"),
                           ("verify", "verify the event log's hash chain (exit 1 on any edit)"),
                           ("check", "load the bundle and compile its schemas (fail closed)"),
                           ("approve", "approve one exact action and payload, as this identity"),
                           ("assert", "record a fact (for example guardrails_ok) as this identity"),
                           ("keygen", "create an Ed25519 key pair (operator or approver)"),
                           ("checkpoint", "sign the log's current head with the operator key")):
        if name == "keygen":
            c = cps.add_parser(name, help=helptext, description=helptext)
            c.add_argument("name", help="key name: NAME.key and NAME.pub are written")
            c.add_argument("--dir", help="where (default: the user's config directory, keys/)")
            c.set_defaults(func=_cmd_cp_keygen)
            continue
        c = cps.add_parser(name, help=helptext, description=helptext, parents=[workspace(
            "workspace root (the log is <workspace>/_state/control-plane.jsonl)")])
        c.add_argument("--bundle", help="bundle YAML")
        c.add_argument("--schemas", help="schemas directory (default: next to the bundle)")
        c.add_argument("--events", help="event log (JSONL)")
        c.add_argument("--checkpoints", help="signed checkpoints file (default: in the user's state directory, "
                                             "outside the log's; or $UNITY_MLOPS_CHECKPOINTS)")
        c.add_argument("--operator-pub", action="append", help="a trusted operator public key (base64 or .pub "
                                                                "file; repeatable; the bundle's checkpoint_keys too)")
        if name == "verify":
            c.add_argument("--expect-head", help="SEQ:HASH kept from an earlier verify: the log must still hold it")
        if name == "checkpoint":
            c.add_argument("--operator-key", required=True, help="the operator's private key (NAME.key)")
        if name == "approve":
            c.add_argument("action_id")
            c.add_argument("--payload", required=True, help="the exact JSON arguments being approved")
            c.add_argument("--key", required=True, help="your Ed25519 private key (NAME.key from keygen); its public "
                                                        "key must be in the bundle's approval_policy.approvers")
            c.add_argument("--sign-only", action="store_true",
                           help="print the signed approval instead of recording it (for the approval.grant tool)")
            c.add_argument("--ttl", type=float, help="seconds until the approval expires")
            c.add_argument("--reason")
        if name == "assert":
            c.add_argument("fact")
            c.add_argument("--subject", default="*", help="what the fact is about (default: global)")
            c.add_argument("--ttl", type=float, help="seconds until the fact expires")
            c.add_argument("--false", action="store_true", help="record the fact as false")
            c.add_argument("--reason")
        c.set_defaults(func={"serve": _cmd_cp_serve, "verify": _cmd_cp_verify, "check": _cmd_cp_check,
                             "approve": _cmd_cp_approve, "assert": _cmd_cp_assert,
                             "checkpoint": _cmd_cp_checkpoint}[name])
