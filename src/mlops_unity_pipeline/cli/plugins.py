"""`unity-mlops plugins`: every installed plugin of every extension family, the product's own included."""

from __future__ import annotations

import argparse
import json

from .options import json_output


def _cmd_plugins(args: argparse.Namespace) -> int:
    from ..plugins import FAMILIES, describe

    rows = [r for r in describe() if not args.family or r["family"] == args.family]
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0 if all(r["status"] == "ok" for r in rows) else 1
    for family, fam in FAMILIES.items():
        if args.family and family != args.family:
            continue
        print(f"{family} ({fam.group}; chosen by {fam.chosen_by})")
        for r in (r for r in rows if r["family"] == family):
            status = "" if r["status"] == "ok" else f"  BROKEN: {r['status']}"
            print(f"  {r['name']:<20} {r['object']}  [{r['package']}]{status}")
    return 0 if all(r["status"] == "ok" for r in rows) else 1



def register(sub: argparse._SubParsersAction) -> None:
    from ..plugins import FAMILIES

    p = sub.add_parser("plugins", help="list the installed plugins of every extension family",
                       description="Every extension family is a group of Python entry points; the product's own "
                                   "implementations are registered the same way as a package's. Lists each "
                                   "plugin, where it comes from, and whether it loads (exit 1 if one does not).",
                       parents=[json_output("print the list as JSON")])
    p.add_argument("--family", choices=sorted(FAMILIES), help="only this family")
    p.set_defaults(func=_cmd_plugins)
