"""Options several commands share, declared once (as argparse parent parsers)."""

from __future__ import annotations

import argparse

WORKSPACE_HELP = "workspace root (default: $UNITY_MLOPS_WORKSPACE or ./runs)"


def where(suppress: bool = False) -> argparse.ArgumentParser:
    """--workspace and --registry. `suppress`: accepted before or after a group's action (the default is the
    group's value, not None)."""
    p = argparse.ArgumentParser(add_help=False)
    default = {"default": argparse.SUPPRESS} if suppress else {}
    _workspace(p, WORKSPACE_HELP, **default)
    p.add_argument("--registry", help="registry directory or URI (file:, sqlite:, postgresql:, vertex://, or an "
                                      "installed backend's; default: $UNITY_MLOPS_REGISTRY or <workspace>/_registry)",
                   **default)
    return p


def workspace(help: str | None = None) -> argparse.ArgumentParser:
    """--workspace alone (`help`: what it means to this command; None: accepted, not shown)."""
    p = argparse.ArgumentParser(add_help=False)
    _workspace(p, argparse.SUPPRESS if help is None else help)
    return p


def _workspace(p: argparse.ArgumentParser, help: str, **kw) -> None:
    p.add_argument("--workspace", help=help, **kw)


def json_output(help: str = "print JSON") -> argparse.ArgumentParser:
    """--json: machine-readable output instead of the table."""
    p = argparse.ArgumentParser(add_help=False)
    p.add_argument("--json", action="store_true", help=help)
    return p


def scheduler_config() -> argparse.ArgumentParser:
    """The scheduler config a command reads (schedules, webhooks, the state store) and where its state is."""
    p = argparse.ArgumentParser(add_help=False)
    p.add_argument("config", help="scheduler config (YAML/JSON): schedules, webhooks, the state directory")
    p.add_argument("--state-dir", help="state store directory (default <workspace>/_state)")
    return p
