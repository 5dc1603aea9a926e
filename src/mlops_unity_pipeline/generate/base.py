"""Generators turn a behavior definition into files. The default is deterministic and offline (Jinja2
templates); another generator (for example an LLM-backed one) can be plugged in behind the same interface,
and its output goes through the same checks."""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import yaml

from .. import __version__
from ..behavior.archetypes import archetype
from ..behavior.definition import COLLISION_STAT, EVALUATION_SEED, SUCCESS_STAT, BehaviorDefinition, observation_keys
from ..behavior.observations import KINDS
from ..specs import RLTrainingConfig, UnityAssetSpec
from ..trainer.config import trainer_config

DECISION_PERIOD = 5  # with Unity's default fixedDeltaTime of 0.02 s: one decision every 0.1 s, as simulated


@dataclass
class GeneratedArtifacts:
    trainer_config: Path
    agent_source: Path
    behavior_json: Path
    build_script: Path | None = None
    setup_notes: Path | None = None

    def as_dict(self) -> dict[str, str]:
        out = {"trainer_config": str(self.trainer_config), "agent_source": str(self.agent_source),
               "behavior_json": str(self.behavior_json)}
        if self.build_script:
            out["build_script"] = str(self.build_script)
        if self.setup_notes:
            out["setup_notes"] = str(self.setup_notes)
        return out


def csharp_string_literal(text: str) -> str:
    """A C# regular string literal that holds `text` as data whatever it contains."""
    out = ['"']
    for ch in text:
        code = ord(ch)
        if ch == '"':
            out.append('\\"')
        elif ch == "\\":
            out.append("\\\\")
        elif ch == "\n":
            out.append("\\n")
        elif ch == "\r":
            out.append("\\r")
        elif ch == "\t":
            out.append("\\t")
        elif 32 <= code < 127:
            out.append(ch)
        elif code <= 0xFFFF:
            out.append(f"\\u{code:04x}")
        else:
            out.append(f"\\U{code:08x}")
    out.append('"')
    return "".join(out)


class CodeGenerator(ABC):
    @abstractmethod
    def generate(
        self, asset: UnityAssetSpec, definition: BehaviorDefinition, config: RLTrainingConfig, out_dir: Path
    ) -> GeneratedArtifacts: ...


class TemplateGenerator(CodeGenerator):
    """Renders the built-in Jinja2 templates, or a team's own copy of them (`templates`: a directory with the same
    file names)."""

    def __init__(self, templates: str | Path | None = None) -> None:
        import jinja2

        loader = jinja2.FileSystemLoader(str(templates)) if templates else \
            jinja2.PackageLoader("mlops_unity_pipeline.generate", "templates")
        self.env = jinja2.Environment(
            loader=loader, autoescape=False, trim_blocks=True, lstrip_blocks=True,
            keep_trailing_newline=True, undefined=jinja2.StrictUndefined,
        )

    def _context(self, asset: UnityAssetSpec, definition: BehaviorDefinition) -> dict:
        a = definition.action
        if a.is_hybrid:
            action_summary = f"hybrid, {a.continuous} continuous (acceleration along u, v) + {list(a.branches)}"
            action_setup = f"ActionSpec = new ActionSpec({a.continuous}, new[] {{ {', '.join(map(str, a.branches))} }})"
            action_setup_text = (f"Continuous Actions {a.continuous}, Discrete Branches {len(a.branches)} with sizes "
                                 f"{', '.join(str(b) for b in a.branches)}")
        elif a.is_continuous:
            action_summary = f"continuous, {a.continuous} actions (acceleration along u, v)"
            action_setup = f"ActionSpec = ActionSpec.MakeContinuous({a.continuous})"
            action_setup_text = f"Continuous Actions {a.continuous}, Discrete Branches 0"
        else:
            action_summary = f"discrete, branches {list(a.branches)}"
            action_setup = f"ActionSpec = ActionSpec.MakeDiscrete({', '.join(str(b) for b in a.branches)})"
            action_setup_text = (f"Continuous Actions 0, Discrete Branches {len(a.branches)} with sizes "
                                 f"{', '.join(str(b) for b in a.branches)}")
        p = definition.params
        return dict(
            tool_version=__version__,
            asset_id_literal=csharp_string_literal(asset.asset_id),
            behavior_name=definition.behavior_name,
            class_name=agent_class_name(definition),
            archetype=definition.archetype,
            summary=archetype(definition.archetype).summary,
            description_literal=csharp_string_literal(asset.description),
            observation_size=definition.observation_size,
            observations=definition.observations,
            observation_code=[KINDS[c.key].code(c.size) for c in definition.observations if c.key in KINDS],
            action_summary=action_summary,
            action_setup=action_setup,
            continuous=a.is_continuous,
            hybrid=a.is_hybrid,
            camera=definition.camera,
            branches=list(a.branches),
            decision_period=DECISION_PERIOD,
            success_stat=SUCCESS_STAT, collision_stat=COLLISION_STAT, evaluation_seed=EVALUATION_SEED,
            num_goals=max(1, p.num_waypoints),
            num_obstacles=p.num_obstacles,
            p=p,
            action_setup_text=action_setup_text,
            observation_rows=[{"key": c.key, "size": c.size, "meaning": observation_keys()[c.key][1]}
                              for c in definition.observations if c.key != "camera"],
            parameters=archetype(definition.archetype).parameters,
            archetype_task=p.task,
        )

    def render_agent(self, asset: UnityAssetSpec, definition: BehaviorDefinition) -> str:
        template = TEMPLATES.get(definition.params.task, "agent.cs.j2")
        return self.env.get_template(template).render(**self._context(asset, definition))

    def generate(
        self, asset: UnityAssetSpec, definition: BehaviorDefinition, config: RLTrainingConfig, out_dir: Path
    ) -> GeneratedArtifacts:
        out_dir.mkdir(parents=True, exist_ok=True)
        cfg_path = out_dir / "trainer_config.yaml"
        cfg_path.write_text(
            "# ML-Agents trainer configuration generated by unity-mlops\n"
            + yaml.safe_dump(trainer_config(definition, config), sort_keys=False)
        )
        cs_path = out_dir / f"{agent_class_name(definition)}.cs"
        cs_path.write_text(self.render_agent(asset, definition))
        behavior_path = out_dir / "behavior.json"
        behavior_path.write_text(definition.to_json())
        ctx = self._context(asset, definition)
        editor = out_dir / "Editor"
        editor.mkdir(exist_ok=True)
        build_script = editor / "BuildScript.cs"
        build_script.write_text(self.env.get_template("BuildScript.cs.j2").render(**ctx))
        setup = out_dir / "SETUP.md"
        setup.write_text(self.env.get_template("SETUP.md.j2").render(**ctx))
        return GeneratedArtifacts(cfg_path, cs_path, behavior_path, build_script, setup)


TEMPLATES = {"arena": "agent.cs.j2", "duel": "duel.cs.j2", "pads": "pads.cs.j2", "corridor": "corridor.cs.j2"}


def agent_class_name(definition: BehaviorDefinition) -> str:
    name = definition.behavior_name
    return name if name.endswith("Agent") else f"{name}Agent"


def template_path(name: str) -> Path:
    return Path(str(resources.files("mlops_unity_pipeline.generate") / "templates" / name))
