"""`ui` and `ui-token`: the web dashboard over the same stores, and the operator tokens that let it change state."""

from __future__ import annotations

import argparse
import sys

from ..app import App
from ..errors import UserError
from .options import where, workspace


def _cmd_ui(args: argparse.Namespace) -> int:
    from ..ui.server import serve

    app = App.from_args(args)
    if args.host not in ("127.0.0.1", "localhost", "::1"):
        print(f"warning: serving on {args.host}: anyone who can reach it can read the dashboard; put it behind a "
              "TLS proxy (sign-in cookies are marked Secure only over https)", file=sys.stderr)
    print(f"unity-mlops dashboard: http://{args.host}:{args.port}/  (workspace {app.paths.workspace}; Ctrl-C stops)",
          flush=True)
    serve(app, args.host, args.port)
    return 0


def _cmd_ui_token(args: argparse.Namespace) -> int:
    from ..ui.auth import TokenError, create_token

    path = App.from_args(args).paths.state_dir / "ui-tokens"
    try:
        token = create_token(path, args.name)
    except TokenError as exc:
        raise UserError(str(exc)) from None
    print(f"operator {args.name}: {token}\n(shown once; only its SHA-256 is stored in {path}; sign in at /login)")
    return 0



def register(sub: argparse._SubParsersAction) -> None:
    u = sub.add_parser("ui", help="the web dashboard: runs, curves, models, schedules, webhooks, control plane",
                       description="Serve the dashboard over the workspace's stores. Read-only until an operator "
                                   "signs in with a token from `unity-mlops ui-token NAME`.",
                       parents=[where()])
    u.add_argument("--host", default="127.0.0.1", help="interface to bind (default 127.0.0.1: this machine only)")
    u.add_argument("--port", type=int, default=8765, help="port (default 8765)")
    u.set_defaults(func=_cmd_ui)
    t = sub.add_parser("ui-token", help="create (or replace) an operator's dashboard token",
                       description="Prints a new random token for NAME once; only its SHA-256 is stored.",
                       parents=[workspace("workspace root (tokens live in <workspace>/_state/ui-tokens)")])
    t.add_argument("name", help="the operator's name, recorded as the actor in the ledger")
    t.set_defaults(func=_cmd_ui_token)
