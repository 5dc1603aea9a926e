"""Checks every generator's output goes through, whichever generator produced it."""

from __future__ import annotations

from pathlib import Path

from ..behavior.definition import BehaviorDefinition
from .base import GeneratedArtifacts
from .csharp_check import check_agent_source, check_syntax


def validate_generated(
    artifacts: GeneratedArtifacts, definition: BehaviorDefinition, trainer_python: Path | None = None
) -> list[str]:
    """Problems with the generated files (empty when they are fine).

    C#: parsed with the tree-sitter C# grammar, API and observation-count checks. Trainer YAML: ML-Agents' own
    strict parser, run in the trainer environment when one is given (about 2 s).
    """
    problems = []
    report = check_agent_source(artifacts.agent_source.read_text(encoding="utf-8"), definition.observation_size)
    problems += [f"{artifacts.agent_source.name}: {e}" for e in report.errors]
    if artifacts.build_script is not None:
        problems += [f"{artifacts.build_script.name}: {e}"
                     for e in check_syntax(artifacts.build_script.read_text(encoding="utf-8"))]
    if trainer_python is not None:
        from ..trainer.mlagents_yaml import validate_with_mlagents

        error = validate_with_mlagents(artifacts.trainer_config, trainer_python)
        if error:
            problems.append(f"{artifacts.trainer_config.name}: ML-Agents rejects it: {error}")
    return problems
