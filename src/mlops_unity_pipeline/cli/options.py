"""Options several commands share, declared once (as argparse parent parsers)."""

from __future__ import annotations

import argparse


def where(suppress: bool = False) -> argparse.ArgumentParser:
    """--workspace and --registry. `suppress`: accepted before or after a group's action (the default is the
    group's value, not None)."""
    p = argparse.ArgumentParser(add_help=False)
    default = {"default": argparse.SUPPRESS} if suppress else {}
    p.add_argument("--workspace", help="workspace root (default: $UNITY_MLOPS_WORKSPACE or ./runs)", **default)
    p.add_argument("--registry", help="registry directory or URI (file:, sqlite:, postgresql:, vertex://, or an "
                                      "installed backend's; default: $UNITY_MLOPS_REGISTRY or <workspace>/_registry)",
                   **default)
    return p


def workspace(help: str = "workspace root (default: $UNITY_MLOPS_WORKSPACE or ./runs)") -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(add_help=False)
    p.add_argument("--workspace", help=help)
    return p


def scheduler_config() -> argparse.ArgumentParser:
    """The scheduler config a command reads (schedules, webhooks, the state store) and where its state is."""
    p = argparse.ArgumentParser(add_help=False)
    p.add_argument("config", help="scheduler config (YAML/JSON): schedules, webhooks, the state directory")
    p.add_argument("--state-dir", help="state store directory (default <workspace>/_state)")
    return p
