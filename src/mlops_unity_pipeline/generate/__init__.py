"""Stage 1, generate: the ML-Agents trainer YAML and the Unity C# Agent for a behavior."""

from .base import CodeGenerator, GeneratedArtifacts, TemplateGenerator, csharp_string_literal

__all__ = ["CodeGenerator", "GeneratedArtifacts", "TemplateGenerator", "csharp_string_literal"]
