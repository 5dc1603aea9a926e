"""`unity-mlops`: the command line. User mistakes print one clear message (no traceback) and exit non-zero.

Each command group is a module that owns its parser and its handlers (`register(subparsers)`); heavy imports
(onnxruntime, pydantic models, the orchestrator) happen inside the commands, so `--help` is fast.
Adding a command: a handler and its parser lines in its group's module; a new group: a module listed in GROUPS.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import os
import sys
from typing import Any

from .. import __version__
from ..errors import UserError

GROUPS = ("jobs", "models", "schedule", "controlplane", "ui", "db", "plugins")  # the order of `--help`
# which group module registers each top-level command: a command imports and builds only its own group
# (tests/test_cli.py checks this against the parsers)
OWNER = {"train": "jobs", "sweep": "jobs", "trainer": "jobs", "behavior": "jobs", "generate": "jobs", "build": "jobs",
         "evaluate": "jobs", "demos": "jobs", "models": "models", "schedule": "schedule", "webhooks": "schedule",
         "k8s": "schedule", "control-plane": "controlplane", "ui": "ui", "ui-token": "ui", "db": "db",
         "plugins": "plugins"}

EPILOG = """examples:
  unity-mlops trainer setup                 create the ML-Agents trainer environment (once)
  unity-mlops train examples/reach_target_job.yaml
  unity-mlops models list
  tensorboard --logdir ./runs

environment:
  UNITY_MLOPS_WORKSPACE    workspace root for jobs (default ./runs)
  UNITY_MLOPS_REGISTRY     registry: a directory or URI (file:, sqlite:, vertex://; default <workspace>/_registry)
  UNITY_MLOPS_DATABASE_URL shared PostgreSQL for registry index, scheduler, outbox (default: SQLite files)
  UNITY_MLOPS_TRAINER_ENV  trainer environment location (default: in the user cache)
  UNITY_BUILD_COMMAND      build a real Unity player instead of the headless player
  MLAGENTS_TRAIN_COMMAND   run this instead of the managed mlagents-learn
"""


def build_parser(groups: tuple[Any, ...] = GROUPS) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="unity-mlops", description="Train, evaluate and register Unity ML-Agents models from a plain spec.",
        epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--version", action="version", version=f"unity-mlops {__version__}")
    p.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = p.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for group in groups:
        (importlib.import_module(f".{group}", __name__) if isinstance(group, str) else group).register(sub)
    return p


def _groups_for(argv: list[str] | None, groups: tuple[Any, ...]) -> tuple[Any, ...]:
    """Only the group that owns the command named (building every parser costs a fifth of a short command's run);
    all of them for the top-level help, an option first, or a name no group claims (its error lists them all)."""
    words = sys.argv[1:] if argv is None else argv
    if words and OWNER.get(words[0]) in groups:
        return (OWNER[words[0]],)
    return groups


INTEGRITY_EXIT = 4
EXIT_CODES = {  # every code a command ends with (the reference page "Exit codes" is generated from this)
    0: "done",
    1: "the work failed: a job (its stage and log tail are printed), a sweep trial, a scheduled run; `control-plane "
       "verify` found tampering; `models sync` found drift; `db status`: the database is behind",
    2: "invalid input: the field or byte, the problem and the fix in one message; nothing was written",
    3: "the ML-Agents trainer environment is missing or broken (`unity-mlops trainer setup`)",
    4: "refused: a promotion blocked by its gates (each failing criterion and by how much), or the control-plane "
       "event log failed verification (nothing appended)",
    130: "interrupted (Ctrl-C)",
    141: "the reader of the output went away (`| head`), quietly",
}


def main(argv: list[str] | None = None, groups: tuple[Any, ...] = GROUPS) -> int:
    """The command line; `groups` are the command-group modules (a deployment can add its own)."""
    from ..errors import IntegrityError

    parser = build_parser(_groups_for(argv, groups))
    args = parser.parse_args(argv)
    from ..logs import TIMESTAMPED, redacting

    # long-running processes (the scheduler) stamp their lines; every line has known secret values masked. The
    # product's own lines at INFO; libraries (alembic, httpx, ray, ...) only at WARNING unless --verbose
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.WARNING, stream=sys.stderr,
                        format=TIMESTAMPED if getattr(args, "timestamps", False) else "%(message)s")
    logging.getLogger("unity_mlops").setLevel(logging.DEBUG if args.verbose else logging.INFO)
    for handler in logging.getLogger().handlers:
        redacting(handler)
    try:
        rc = args.func(args)
        sys.stdout.flush()  # inside the try: a reader that went away is met here, not at interpreter exit
        return rc
    except UserError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return exc.exit_code
    except IntegrityError as exc:  # fail closed, in one line: nothing was appended to a log that is not trusted
        print(f"error: the control-plane event log is not trusted: {exc}\n"
              "  fix: restore it from a copy whose head matches your last checkpoint "
              "(`unity-mlops control-plane verify` names the first bad line)", file=sys.stderr)
        return INTEGRITY_EXIT
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # `unity-mlops models history X | head`: the reader stopped; stop quietly
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141


if __name__ == "__main__":
    sys.exit(main())
