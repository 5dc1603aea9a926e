"""A third party's action with its own lifecycle event, in one module and one entry point
(`[unity_mlops.actions] annotate = annotate_plugin:ANNOTATE`): `unity-mlops models annotate VERSION --note ...`,
an "Annotate" form on the dashboard's asset page, and an MCP tool once a control-plane bundle lists
`model.annotate`. Each note is kept in the workspace and announced as a `model.annotated` event (listeners and the
webhook outbox receive it like the product's own)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, ClassVar

from mlops_unity_pipeline.app.actions import Action, Command, Context
from mlops_unity_pipeline.events import AssetEvent


@dataclass(frozen=True, kw_only=True)
class ModelAnnotated(AssetEvent):
    """Someone wrote a note on a version (a playtest verdict, a known weakness)."""

    type: ClassVar[str] = "model.annotated"
    note: str = ""

    def text(self) -> str:
        return f"{self.asset_name} {self.version}: {self.note} ({self.actor})"


SCHEMA = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "type": "object",
    "additionalProperties": False,
    "required": ["version", "note"],
    "properties": {
        "version": {"type": "string", "minLength": 1, "maxLength": 200, "description": "the version to annotate"},
        "note": {"type": "string", "minLength": 1, "maxLength": 2000, "description": "what to say about it"},
        "asset": {"type": "string", "maxLength": 200, "description": "the asset (the dashboard sends it)"},
    },
}


def annotate(ctx: Context, payload: dict[str, Any]) -> dict[str, Any]:
    version = ctx.app.registry().get(payload["version"])  # an unknown version is refused before anything is kept
    note = {"asset": version.asset_name, "version": version.version, "note": payload["note"], "actor": ctx.actor}
    with open(ctx.app.paths.workspace / "_notes.jsonl", "a", encoding="utf-8") as f:
        f.write(json.dumps(note) + "\n")
    ctx.app.bus().publish(ModelAnnotated(asset_name=version.asset_name, version=version.version, actor=ctx.actor,
                                         note=payload["note"], key=f"note:{version.version}:{payload['note']}"))
    return note


ANNOTATE = Action(
    "model.annotate", "write a note on a version", SCHEMA, annotate,
    text=lambda r: f"{r['asset']} {r['version']}: noted",
    commands=(Command("models", "annotate", positionals=("version",), page="asset"),))
