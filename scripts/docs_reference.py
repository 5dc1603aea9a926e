"""The documentation's reference pages, generated from the code when the site is built (`mkdocs build`).

Each function returns Markdown for one kind of fact, read from where the code keeps it: the CLI from its argparse
parsers, environment variables from `settings.VARIABLES`, config files from the pydantic models' JSON Schema,
webhook events from the event classes, exit codes from `cli.EXIT_CODES`, MCP tools from the bundled control-plane
bundle. A page says `<!-- reference: NAME -->` where the generated part goes (`scripts/docs_hooks.py`), so the
reference cannot drift from the code, and `tests/test_docs.py` checks that nothing the code has is left out.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
from typing import Any

import yaml


def _cell(text: Any) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ").strip()


# ---------------------------------------------------------------------------------------------------------- CLI
def _subcommands(parser: argparse.ArgumentParser) -> list[tuple[str, argparse.ArgumentParser, str]]:
    """(name, parser, help) of each sub-command, in the order of `--help`."""
    out = []
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            helps = {a.dest: a.help or "" for a in action._choices_actions}
            out += [(name, sub, helps.get(name, "")) for name, sub in action.choices.items()]
    return out


def cli_commands(parser: argparse.ArgumentParser | None = None, prefix: str = "unity-mlops"
                 ) -> list[tuple[str, argparse.ArgumentParser, str]]:
    """Every runnable command: (its full name, its parser, its one-line help)."""
    if parser is None:
        from mlops_unity_pipeline.cli import build_parser

        parser = build_parser()
    out = []
    for name, sub, help_ in _subcommands(parser):
        full = f"{prefix} {name}"
        children = _subcommands(sub)
        if children:
            out += cli_commands(sub, full)
        else:
            out.append((full, sub, help_))
    return out


def _argument_rows(parser: argparse.ArgumentParser) -> list[str]:
    rows = []
    for a in parser._actions:
        if isinstance(a, argparse._HelpAction | argparse._SubParsersAction):
            continue
        name = ", ".join(f"`{s}`" for s in a.option_strings) or f"`{a.metavar or a.dest.upper()}`"
        if a.option_strings and a.nargs != 0:
            name += f" `{a.metavar or a.dest.upper()}`"
        default = "" if a.default in (None, False, argparse.SUPPRESS) or a.required else f"default: `{a.default}`"
        choices = f"one of {', '.join(f'`{c}`' for c in a.choices)}" if a.choices else ""
        help_ = "(accepted, not shown by --help)" if a.help == argparse.SUPPRESS else _cell(a.help or "")
        text = " ".join(x for x in (help_, choices, default) if x)
        rows.append(f"| {name} | {text} |")
    return rows


def cli_reference() -> str:
    from mlops_unity_pipeline.cli import build_parser

    top = build_parser()
    lines = ["Every command and option, as `unity-mlops --help` gives them (generated from the parsers).", "",
             "| command | what it does |", "|---|---|"]
    commands = cli_commands(top)
    lines += [f"| [`{name}`](#{name.replace(' ', '-')}) | {_cell(help_)} |" for name, _, help_ in commands]
    lines += ["", "Global options: `--version`, `-v`/`--verbose` (debug logging).", ""]
    for name, parser, help_ in commands:
        usage = parser.format_usage().removeprefix("usage: ").strip()
        lines += [f"## {name}", "", _cell(parser.description or help_), "", "```text", usage, "```", ""]
        rows = _argument_rows(parser)
        if rows:
            lines += ["| argument | meaning |", "|---|---|", *rows, ""]
    return "\n".join(lines)


# --------------------------------------------------------------------------------------- environment variables
def environment_reference() -> str:
    from mlops_unity_pipeline.settings import VARIABLES

    lines = ["Every variable the product reads (generated from `settings.py`, the one module that reads the "
             "environment). Secrets are read where they are used and never written anywhere.", ""]
    for group, names in VARIABLES.items():
        lines += [f"## {group}", "", "| variable | meaning |", "|---|---|"]
        lines += [f"| `{name}` | {_cell(text)} |" for name, text in names.items()]
        lines.append("")
    return "\n".join(lines)


# ------------------------------------------------------------------------------------------- config schemas
def _type_of(schema: dict[str, Any], link: bool = True) -> str:
    if "$ref" in schema:
        name = schema["$ref"].rsplit("/", 1)[-1]
        return f"[{name}](#{name.lower()})" if link else name
    if "anyOf" in schema:
        return " or ".join(_type_of(s, link) for s in schema["anyOf"])
    if "enum" in schema:
        return " \\| ".join(f"`{v}`" for v in schema["enum"])
    if "const" in schema:
        return f"`{schema['const']}`"
    kind = schema.get("type", "any")
    if kind == "array":
        return f"list of {_type_of(schema.get('items', {}), link)}"
    if kind == "object" and isinstance(schema.get("additionalProperties"), dict):
        return f"map of {_type_of(schema['additionalProperties'], link)}"
    return {"integer": "int", "number": "float", "string": "str", "boolean": "bool", "null": "null",
            "object": "mapping"}.get(kind, kind)


def _schema_table(title: str, schema: dict[str, Any]) -> list[str]:
    lines = [f"### {title}", "", _cell(schema.get("description", "")), "",
             "| key | type | default | meaning |", "|---|---|---|---|"]
    required = set(schema.get("required", []))
    for key, prop in schema.get("properties", {}).items():
        default = "required" if key in required else (f"`{json.dumps(prop['default'])}`" if "default" in prop
                                                      else "computed")
        lines.append(f"| `{key}` | {_type_of(prop)} | {_cell(default)} | {_cell(prop.get('description', ''))} |")
    return lines + [""]


def config_models() -> dict[str, type]:
    """The files a user writes, by what they are called in the docs."""
    from mlops_unity_pipeline.scheduler.config import SchedulerConfig
    from mlops_unity_pipeline.specs import TrainingJob, TrainingSchedule

    return {"Job file (`unity-mlops train JOB.yaml`)": TrainingJob,
            "Schedule (an entry of `schedules:`)": TrainingSchedule,
            "Scheduler config (`unity-mlops schedule run CONFIG.yaml`, `k8s render CONFIG.yaml`)": SchedulerConfig}


def config_keys() -> dict[str, set[str]]:
    """Every key of every model the config files contain, by model name (for the completeness test)."""
    keys: dict[str, set[str]] = {}
    for model in config_models().values():
        schema = model.model_json_schema()
        for name, sub in [(model.__name__, schema), *schema.get("$defs", {}).items()]:
            keys.setdefault(name, set()).update(sub.get("properties", {}))
    return keys


def schema_reference() -> str:
    from mlops_unity_pipeline.governance.gates import GateConfig

    lines = ["Generated from the pydantic models' JSON Schema. Unknown keys are errors (with a \"did you mean\" "
             "for a near miss); every problem of a file is reported at once, with its key path, exit code 2.", ""]
    seen: set[str] = set()
    for title, model in config_models().items():
        schema = model.model_json_schema()
        lines += [f"## {title}", "", *_schema_table(model.__name__, schema)]
        seen.add(model.__name__)
        for name, sub in schema.get("$defs", {}).items():
            if name not in seen:
                seen.add(name)
                lines += _schema_table(name, sub)
    lines += ["## Promotion gates (`unity-mlops models promote --gates FILE`)", "",
              "A YAML or JSON mapping of any of these (the governance guide says what each gate does):", "",
              "| key | default |", "|---|---|"]
    for f in dataclasses.fields(GateConfig):
        default = f.default if f.default is not dataclasses.MISSING else f.default_factory()  # type: ignore[misc]
        lines.append(f"| `{f.name}` | `{_cell(default)}` |")
    return "\n".join(lines + [""])


# ------------------------------------------------------------------------------------------------ webhooks
def webhook_reference() -> str:
    from mlops_unity_pipeline.events import EVENT_CLASSES

    lines = ["Every delivery is a JSON body `{type, id, timestamp, data, text}`, signed per Standard Webhooks "
             "(`webhook-id`, `webhook-timestamp`, `webhook-signature`) when the endpoint has a `whsec_` secret; the "
             "same event keeps its `webhook-id` on every retry. Generated from the event classes (`events.py`).", "",
             "| type | `data` fields | sent when |", "|---|---|---|"]
    for type_, cls in EVENT_CLASSES.items():
        fields = ", ".join(f"`{f.name}`" for f in dataclasses.fields(cls) if f.name != "key")
        lines.append(f"| `{type_}` | {fields} | {_cell(cls.__dict__.get('__doc__') or '')} |")
    lines += [""]
    for type_, cls in EVENT_CLASSES.items():
        example = {f.name: _example(f) for f in dataclasses.fields(cls) if f.name != "key"}
        text = cls(**example).text()
        body = {"type": type_, "id": "msg_2Yg0…", "timestamp": "2026-12-07T03:00:05+00:00", "data": example,
                "text": text}
        lines += [f"## {type_}", "", "```json", json.dumps(body, indent=2, ensure_ascii=False), "```", ""]
    return "\n".join(lines)


_EXAMPLES = {"job_id": "nightly-nav", "asset_id": "nav-001", "model_version": "unity-navagent-20261207-3f9c2a1-v004",
             "uri": "file:///srv/registry/models/unity-navagent-20261207-3f9c2a1-v004", "attempt": 1,
             "success_rate": 0.962, "mean_reward": 1.41, "trained_model_path": "runs/_registry/models/…/NavAgent.onnx",
             "status": "failed", "stage": "train", "message": "trainer exited with code 1", "log_tail": "…",
             "schedule_id": "nightly", "slot": "2026-12-07T03:00:00+00:00", "asset_ids": ["nav-001"],
             "reason": "the scheduler was down", "missed_total": 1}


def _example(f: dataclasses.Field) -> Any:
    return _EXAMPLES.get(f.name, f.default if f.default is not dataclasses.MISSING else None)


# ---------------------------------------------------------------------------------------------- exit codes
def exit_code_reference() -> str:
    from mlops_unity_pipeline.cli import EXIT_CODES

    lines = ["Every `unity-mlops` command ends with one of these (generated from `cli.EXIT_CODES`):", "",
             "| code | meaning |", "|---:|---|"]
    return "\n".join(lines + [f"| {code} | {_cell(text)} |" for code, text in EXIT_CODES.items()] + [""])


# ------------------------------------------------------------------------------------------------ MCP tools
def mcp_tools() -> list[dict[str, Any]]:
    from mlops_unity_pipeline.controlplane.runtime import DEFAULT_BUNDLE

    bundle = yaml.safe_load(DEFAULT_BUNDLE.read_text())
    tools = []
    for group in bundle["api_surface"]["tools"]:
        for action in group["actions"]:
            schema = json.loads((DEFAULT_BUNDLE.parent / "schemas" / f"{action['id']}.json").read_text())
            requires = sorted({r for t in bundle["workflow"]["transitions"] if t["action"] == action["id"]
                               for r in t.get("requires", [])} | set(action.get("requires", [])))
            tools.append({**action, "group": group["name"], "schema": schema, "requires": requires})
    return tools


def mcp_reference() -> str:
    lines = ["The tools `unity-mlops control-plane serve` offers over MCP (stdio), generated from the bundled "
             "control-plane bundle and its JSON Schemas (2020-12). A call is validated against its schema, then "
             "gated: a workflow transition's requirements (facts established by events, a signed human approval) "
             "must hold, else the result is a HALT naming what is missing.", ""]
    for tool in mcp_tools():
        hints = ", ".join(f"{k}" for k, v in tool.get("annotations", {}).items() if v is True)
        lines += [f"## `{tool['id']}`", "", _cell(tool["description"]), "",
                  f"Group `{tool['group']}`; hints: {hints or 'none'}; gated by: "
                  f"{', '.join(f'`{r}`' for r in tool['requires']) or 'its schema only'}.", "",
                  "| argument | type | required | meaning |", "|---|---|---|---|"]
        required = set(tool["schema"].get("required", []))
        for key, prop in tool["schema"].get("properties", {}).items():
            lines.append(f"| `{key}` | {_type_of(prop, link=False)} | {'yes' if key in required else ''} | "
                         f"{_cell(prop.get('description', ''))} |")
        lines.append("")
    return "\n".join(lines)


def plugins_reference() -> str:
    """The extension families (`plugins.FAMILIES`) and the product's own implementations of each."""
    from mlops_unity_pipeline import plugins

    rows = ["| family | entry-point group | chosen by | an entry is | the product's own |", "|---|---|---|---|---|"]
    for name, fam in plugins.FAMILIES.items():
        own = sorted(n for n, ep in plugins.entries(name).items() if ep.value.startswith("mlops_unity_pipeline."))
        rows.append(f"| {name} | `{fam.group}` | {_cell(fam.chosen_by)} | {_cell(fam.shape)} | "
                    f"{', '.join(f'`{n}`' for n in own)} |")
    return "\n".join(rows)


REFERENCES = {"plugins": plugins_reference, "cli": cli_reference, "environment": environment_reference,
              "schemas": schema_reference,
              "webhooks": webhook_reference, "exit-codes": exit_code_reference, "mcp": mcp_reference}


def render(name: str) -> str:
    return REFERENCES[name]()


if __name__ == "__main__":  # print one: python scripts/docs_reference.py cli
    import sys

    print(render(sys.argv[1] if len(sys.argv) > 1 else "cli"))
