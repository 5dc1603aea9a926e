"""`models`: the registry, history, reports; promotions, rollback and freezes are actions (`app/operations.py`)."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from .. import settings
from ..app import App
from ..app.actions import add_commands
from ..errors import UserError
from .options import json_output, where


def _registry(args: argparse.Namespace):
    return App.from_args(args).registry()


def _get_version(args: argparse.Namespace):
    from ..registry.base import VersionNotFound

    registry = _registry(args)
    try:
        return registry.resolve(args.version)
    except VersionNotFound as exc:
        raise UserError(str(exc), hint=f"`unity-mlops models list` shows the versions in {registry.root}; a "
                                       "version is its full name or ASSET@ALIAS (e.g. navagent@production)") from None


def _cmd_models_list(args: argparse.Namespace) -> int:
    registry = _registry(args)
    versions, total = registry.versions_page(args.limit, args.offset,
                                             registry.asset_name_for(args.asset) if args.asset else None)
    if total > args.offset + len(versions):  # on stderr: the JSON on stdout stays one document
        print(f"({len(versions)} of {total} versions from {args.offset}: --offset {args.offset + len(versions)} "
              "for the next page)", file=sys.stderr)
    held: dict[str, list[str]] = {}
    for name in {v.asset_name for v in versions}:
        for alias, version in registry.ledger.aliases(name).items():
            held.setdefault(version, []).append(alias)
    if args.json:
        print(json.dumps([{**v.to_dict(), "aliases": sorted(held.get(v.version, []))} for v in versions], indent=2,
                         sort_keys=True, default=str))
        return 0
    if not versions:
        print(f"no models registered in {registry.root}" + (f" for asset {args.asset!r}" if args.asset else ""))
        return 0
    print(f"{'VERSION':48} {'ALIASES':20} {'JOB':24} {'SUCCESS':>8} CREATED")
    for v in versions:
        ev = (v.metrics.get("evaluation") or {}).get("model") or {}
        success = f"{ev['success_rate']:.1%}" if "success_rate" in ev else "-"
        aliases = ",".join(sorted(held.get(v.version, []))) or "-"
        print(f"{v.version:48} {aliases:20} {v.job_id:24} {success:>8} {v.created_at[:19]}")
    return 0


def _cmd_models_show(args: argparse.Namespace) -> int:
    print(json.dumps(_get_version(args).to_dict(), indent=2, sort_keys=True))  # JSON already
    return 0


def _cmd_models_history(args: argparse.Namespace) -> int:
    registry = _registry(args)
    args.asset = registry.asset_name_for(args.asset)  # the name or the asset_id the user wrote
    if args.asset not in {n for n, _ in registry.assets()}:
        raise UserError(f"no asset {args.asset!r} in the registry at {registry.root}",
                        hint="`unity-mlops models list` shows the assets")
    ledger = registry.ledger
    aliases = ledger.aliases(args.asset)
    print(f"staging: {aliases.get('staging', '-')}   production: {aliases.get('production', '-')}"
          + (f"   FROZEN ({ledger.frozen(args.asset)['reason']})" if ledger.frozen(args.asset) else ""))
    for e in ledger.history(args.asset):
        moved = f"{e.alias}: {e.from_version or '-'} -> {e.to_version or '-'}" if e.alias else ""
        print(f"#{e.seq:<4} {e.at[:19]} {e.actor:12} {e.action:18} {moved}  {e.reason}")
    for i in ledger.incidents(args.asset):
        print(f"incident #{i['id']} {i['opened_at'][:19]}: {i['failed_version']} rolled back to "
              f"{i['restored_version']}: {i['reason']}; corrective action: {i['corrective_action'] or '-'}")
    return 0


def _cmd_models_sync(args: argparse.Namespace) -> int:
    from ..registry.uri import vertex_registry

    project = settings.vertex_project()
    if not project:
        raise UserError("models sync compares the local ledger with Vertex AI: set UNITY_MLOPS_VERTEX_PROJECT")
    registry = _registry(args)
    report = vertex_registry(registry, project).sync_report(args.asset, registry.ledger.aliases(args.asset))
    print(json.dumps(report, indent=2))
    return 1 if report["drift"] else 0


def _cmd_models_report(args: argparse.Namespace) -> int:
    from ..governance.report import write_report

    version = _get_version(args).version
    md = write_report(_registry(args), version, Path(args.out) if args.out else None)
    print(md)
    return 0


def _cmd_models_path(args: argparse.Namespace) -> int:
    from ..registry.lookup import model_path

    paths = App.from_args(args).paths  # launchers run this at every start: the hot read first (registry/lookup.py)
    found = model_path(paths.registry, paths.workspace / settings.REGISTRY_DIRNAME, paths.database, args.version)
    print(found or _get_version(args).model_path)
    return 0



def register(sub: argparse._SubParsersAction) -> None:
    common = where(suppress=True)  # accepted before or after the action
    m = sub.add_parser("models", help="the model registry: versions, aliases, promotions, rollback",
                       parents=[common])
    sub_parser = m.add_subparsers(dest="models_command", metavar="ACTION", required=True)

    class Actions:  # every action takes --registry/--workspace too
        @staticmethod
        def add_parser(name: str, **kw):
            return sub_parser.add_parser(name, parents=[common, *kw.pop("parents", [])], **kw)

    ms = Actions()
    ml = ms.add_parser("list", help="list registered versions", parents=[json_output(
        "print JSON (with each version's aliases)")])
    ml.add_argument("--asset", help="only this asset (its name or asset_id)")
    ml.add_argument("--limit", type=int, default=1000, help="at most this many versions (default 1000)")
    ml.add_argument("--offset", type=int, default=0, help="skip this many first (the next page)")
    ml.set_defaults(func=_cmd_models_list)
    mshow = ms.add_parser("show", help="print a version's record (metrics, lineage, files)")
    mshow.add_argument("version")
    mshow.set_defaults(func=_cmd_models_show)
    mp = ms.add_parser("path", help="print the path of a version's ONNX model")
    mp.add_argument("version")
    mp.set_defaults(func=_cmd_models_path)
    add_commands(sub_parser, "models", [common])  # promote, rollback, freeze, unfreeze: actions (app/operations.py)
    mh = ms.add_parser("history", help="aliases, the promotion ledger and incidents of an asset")
    mh.add_argument("asset")
    mh.set_defaults(func=_cmd_models_history)
    msy = ms.add_parser("sync", help="report drift between the local ledger and Vertex AI aliases",
                        description="Exit 1 when an alias differs. Needs UNITY_MLOPS_VERTEX_PROJECT.")
    msy.add_argument("asset")
    msy.set_defaults(func=_cmd_models_sync)
    mre = ms.add_parser("report", help="write the evaluation report and changelog of a version")
    mre.add_argument("version")
    mre.add_argument("--out", help="directory (default <registry>/reports/<version>)")
    mre.set_defaults(func=_cmd_models_report)
