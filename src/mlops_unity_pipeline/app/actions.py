"""Actions: each governance or operations action is one object, from which its front ends are made.

An `Action` is an id (the control plane's and the MCP tool's name), its inputs (a JSON Schema, the one the MCP
tool publishes and every front end validates against), what it does (`run`, through the `App`'s services), how its
result reads (`text`) and where it appears (`Command`s: `unity-mlops <group> <name>` and the dashboard button of the
same name on the page that has it). The built-ins (`app/operations.py`) are registered like a third party's, as
entry points of the `unity_mlops.actions` family, so adding one is one object and one entry point; exposing it over
MCP is one entry in the control-plane bundle, because the bundle is the policy (fail closed: an agent may call only
what it lists, gated as it says).
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .. import settings
from ..errors import UserError
from . import App


@dataclass(frozen=True)
class Command:
    """Where an action appears: `unity-mlops <group> <name>`, and the button `name` on the dashboard's `page`.
    `presets` fix inputs (`models unfreeze` is model.freeze with frozen false); `defaults` fill left-out ones."""

    group: str
    name: str
    help: str = ""
    positionals: tuple[str, ...] = ()
    presets: dict[str, Any] = field(default_factory=dict)
    defaults: dict[str, Any] = field(default_factory=dict)
    options: tuple[tuple[str, dict[str, Any]], ...] = ()  # extra command-line options for the App (--gates)
    page: str | None = None  # "asset", "schedules", "webhooks": the dashboard page with its button


@dataclass(frozen=True)
class Action:
    id: str
    summary: str
    schema: dict[str, Any]
    run: Callable[[Context, dict[str, Any]], dict[str, Any]]
    text: Callable[[dict[str, Any]], str] = lambda result: json.dumps(result, indent=2, default=str)
    commands: tuple[Command, ...] = ()
    # what a front end's input means before validation (a version named ASSET@ALIAS, the rollback's version)
    prepare: Callable[[Context, dict[str, Any]], dict[str, Any]] | None = None
    filled: tuple[str, ...] = ()  # inputs `prepare` fills when a front end leaves them out


@dataclass
class Context:
    """Who acts, and through which services: the App (registry, governance), the control plane when the call came
    through it, a scheduler config for the actions on schedules and the webhook outbox."""

    app: App
    actor: str = field(default_factory=settings.actor)
    runtime: Any = None
    config: Any = None
    state_dir: Path | None = None

    def governance(self):
        """Through the control plane (`runtime`), the call was gated already: governance without a second gate."""
        if self.runtime is not None:
            from ..governance import Governance

            return Governance(self.app.registry(), events=self.app.bus())
        return self.app.governance()

    def state_store(self):
        from ..scheduler.store import StateStore

        if self.config is not None:
            return StateStore(self.state_dir or self.config.resolved_state_dir(), self.config.database_url())
        return StateStore(self.state_dir or self.app.paths.state_dir, self.app.paths.database)


def installed() -> dict[str, Action]:
    """Every action, the product's and those of installed packages, by id."""
    from .. import plugins

    return {a.id: a for a in plugins.load_all("actions").values()}


def action(action_id: str) -> Action:
    actions = installed()
    if action_id not in actions:
        raise UserError(f"no action {action_id!r}", hint=f"installed: {', '.join(sorted(actions))}")
    return actions[action_id]


def schema_registry():
    """The bundled schemas' shared definitions (`urn:unity-mlops:common`), for schemas that refer to them."""
    from referencing import Registry, Resource
    from referencing.jsonschema import DRAFT202012

    from ..controlplane import DEFAULT_BUNDLE

    docs = [json.loads(p.read_text()) for p in sorted((DEFAULT_BUNDLE.parent / "schemas").glob("*.json"))]
    return Registry().with_resources([(d["$id"], Resource.from_contents(d, default_specification=DRAFT202012))
                                      for d in docs if "$id" in d])


def bundled_schema(action_id: str) -> dict[str, Any]:
    from ..controlplane import DEFAULT_BUNDLE

    return json.loads((DEFAULT_BUNDLE.parent / "schemas" / f"{action_id}.json").read_text())


def perform(act: Action, payload: dict[str, Any], ctx: Context) -> dict[str, Any]:
    """Validate the inputs against the action's schema (every problem at once, with its path), then run it."""
    from jsonschema import Draft202012Validator

    if act.prepare is not None:
        payload = act.prepare(ctx, payload)
    validator = Draft202012Validator(act.schema, registry=schema_registry(),
                                     format_checker=Draft202012Validator.FORMAT_CHECKER)
    errors = sorted(f"{e.json_path}: {e.message}" for e in validator.iter_errors(payload))
    if errors:
        raise UserError(f"invalid input for {act.id}: " + "; ".join(errors))
    from ..registry.base import VersionNotFound

    try:
        return act.run(ctx, payload)
    except VersionNotFound as exc:  # a version the user named: their input, said the same way on every front end
        raise UserError(str(exc), hint="`unity-mlops models list` shows the versions; a version is its full name or "
                                       "ASSET@ALIAS (e.g. navagent@production)") from None
    finally:
        ctx.app.bus().flush(5.0)  # the events it published: a moment for the webhook sender


# ------------------------------------------------------------------------------------------------ command line
def add_commands(sub: argparse._SubParsersAction, group: str, parents: list[argparse.ArgumentParser],
                 context: Callable[[argparse.Namespace], Context] | None = None) -> None:
    """The commands of the group's actions: their arguments made from each action's schema."""
    for act in sorted(installed().values(), key=lambda a: a.id):
        for cmd in act.commands:
            if cmd.group != group:
                continue
            p = sub.add_parser(cmd.name, parents=parents, help=cmd.help or act.summary,
                               description=f"{cmd.help or act.summary} (action {act.id})")
            for name, kw in cmd.options:
                p.add_argument(name, **kw)
            _arguments(p, act, cmd)
            p.set_defaults(func=_handler(act, cmd, context))


def _arguments(p: argparse.ArgumentParser, act: Action, cmd: Command) -> None:
    props, required = act.schema.get("properties", {}), set(act.schema.get("required", []))
    for name in cmd.positionals:
        p.add_argument(name, help=props.get(name, {}).get("description"))
    for name, prop in props.items():
        if name in cmd.positionals or name in cmd.presets:
            continue
        flag = "--" + name.replace("_", "-")
        help_ = prop.get("description") or prop.get("title")
        if prop.get("type") == "boolean":
            p.add_argument(flag, dest=name, action="store_true", default=None, help=help_)
            continue
        kw: dict[str, Any] = {"dest": name, "help": help_}
        if "enum" in prop:
            kw["choices"] = prop["enum"]
        if prop.get("type") == "integer":
            kw["type"] = int
        p.add_argument(flag, required=name in required and name not in cmd.defaults and name not in act.filled, **kw)


def payload_of(act: Action, cmd: Command, values: dict[str, Any]) -> dict[str, Any]:
    """The action's inputs from what a front end was given (empty values left out, then presets, then defaults)."""
    props = act.schema.get("properties", {})
    given = {k: _typed(props[k], v) for k, v in values.items() if k in props and v not in (None, "")}
    return {**cmd.defaults, **given, **cmd.presets}


def _typed(prop: dict[str, Any], value: Any) -> Any:
    """A form's strings as the schema's types (the command line's are typed by argparse already)."""
    if isinstance(value, str) and prop.get("type") == "boolean":
        return value.lower() in ("true", "on", "1", "yes")
    if isinstance(value, str) and prop.get("type") == "integer":
        try:
            return int(value)
        except ValueError:
            return value  # the schema says what is wrong
    return value


def _handler(act: Action, cmd: Command, context: Callable[[argparse.Namespace], Context] | None):
    def handle(args: argparse.Namespace) -> int:
        from ..governance import GovernanceError, PromotionBlocked

        ctx = context(args) if context else Context(App.from_args(args))
        try:
            result = perform(act, payload_of(act, cmd, vars(args)), ctx)
        except PromotionBlocked as exc:
            print(str(exc), file=__import__("sys").stderr)
            raise SystemExit(4) from None
        except GovernanceError as exc:
            raise UserError(str(exc)) from None
        print(act.text(result))
        return 0
    return handle


# ------------------------------------------------------------------------------------------------ the dashboard
def command_for(page: str, name: str) -> tuple[Action, Command] | None:
    """The action behind a dashboard button."""
    for act in installed().values():
        for cmd in act.commands:
            if cmd.page == page and cmd.name == name:
                return act, cmd
    return None


def page_commands(page: str) -> list[tuple[Action, Command]]:
    return [(a, c) for a in sorted(installed().values(), key=lambda a: a.id) for c in a.commands if c.page == page]


# ------------------------------------------------------------------------------------------------ MCP
class PipelineActions:
    """The MCP server's executor: what an action does once the control plane allowed it."""

    def __init__(self, runtime: Any, workspace: str | Path = "runs", registry_root: str | Path | None = None,
                 state_dir: str | Path | None = None) -> None:
        self.runtime = runtime
        self.app = App(workspace=str(workspace), registry=str(registry_root) if registry_root else None)
        self.workspace = self.app.paths.workspace
        self.state_dir = Path(state_dir) if state_dir else self.app.paths.state_dir

    def __call__(self, action_id: str, payload: dict[str, Any]) -> dict[str, Any]:
        ctx = Context(self.app, runtime=self.runtime, state_dir=self.state_dir)
        try:
            return action(action_id).run(ctx, payload)  # the runtime validated it against the bundle's schema
        finally:
            self.app.bus().flush(5.0)
