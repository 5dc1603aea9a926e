"""`db`: the shared database's schema (PostgreSQL deployments migrate it explicitly; SQLite stores do it themselves)."""

from __future__ import annotations

import argparse

from .. import settings
from ..errors import UserError
from .options import workspace


def _url(args: argparse.Namespace) -> str:
    url = args.database or settings.Paths.resolve(args.workspace).database
    if not url:
        raise UserError("no database to migrate: embedded SQLite stores migrate themselves",
                        hint="pass --database postgresql://user@host:port/dbname or set UNITY_MLOPS_DATABASE_URL")
    return url


def _cmd_upgrade(args: argparse.Namespace) -> int:
    from ..store import open_database
    from ..store.database import redact

    db = open_database(_url(args))
    try:
        before, after = db.upgrade()
    except Exception as exc:  # the server is down, the URL is wrong, the role may not create tables
        raise UserError(f"cannot migrate {redact(db.url)}: {str(getattr(exc, 'orig', None) or exc).strip()}",
                        hint="check the URL, that the server is up, and that the role may create tables") from None
    print(f"{redact(db.url)}: schema {before or 'empty'} -> {after}" if before != after
          else f"{redact(db.url)}: schema already at {after}")
    return 0


def _cmd_status(args: argparse.Namespace) -> int:
    from ..store import open_database
    from ..store.database import HEAD, redact

    db = open_database(_url(args))
    try:
        current = db.revision()
    except Exception as exc:
        raise UserError(f"cannot open {redact(db.url)}: {str(getattr(exc, 'orig', None) or exc).strip()}",
                        hint="check the URL and that the server is up") from None
    print(f"{redact(db.url)}: schema {current or 'empty'}; this release needs {HEAD}"
          + ("" if current == HEAD else " (run `unity-mlops db upgrade`)"))
    return 0 if current == HEAD else 1


def _cmd_reindex(args: argparse.Namespace) -> int:
    from ..pipeline.runindex import RunTable

    paths = settings.Paths.resolve(args.workspace, database=args.database)
    table = RunTable.for_paths(paths)
    written = table.reindex(paths.workspace, drop_others=args.all)
    print(f"runs index: {written} run(s) of {paths.workspace} indexed; {table.count()} in the index")
    return 0



def register(sub: argparse._SubParsersAction) -> None:
    d = sub.add_parser("db", help="the shared database: `db upgrade` before first use and after each upgrade",
                       description="Registry index, ledger, scheduler state and webhook outbox live in SQLite files "
                                   "by default (migrated automatically), or in one PostgreSQL database named by "
                                   "UNITY_MLOPS_DATABASE_URL / a config's `database:` (migrated by this command).")
    dsub = d.add_subparsers(dest="db_command", metavar="ACTION", required=True)
    for name, func, text in (("upgrade", _cmd_upgrade, "apply the schema migrations (idempotent, safe to race)"),
                             ("status", _cmd_status, "the database's schema revision; exit 1 if it needs upgrade")):
        c = dsub.add_parser(name, help=text, description=text, parents=[workspace(help=None)])
        c.add_argument("--database", help="database URL (default: $UNITY_MLOPS_DATABASE_URL)")
        c.set_defaults(func=func)
    text = ("rebuild the runs index (what the dashboard and run listings read) from the workspace's run folders")
    c = dsub.add_parser("reindex", help=text, description=text + ". Other machines' rows in a shared database are "
                        "kept unless --all, which makes the index exactly this workspace's folders.",
                        parents=[workspace("the workspace whose run folders are read (default: "
                                           "$UNITY_MLOPS_WORKSPACE or ./runs)")])
    c.add_argument("--database", help="database URL (default: $UNITY_MLOPS_DATABASE_URL; else the workspace's own "
                                      "file)")
    c.add_argument("--all", action="store_true", help="drop rows whose folder is not in this workspace")
    c.set_defaults(func=_cmd_reindex)
