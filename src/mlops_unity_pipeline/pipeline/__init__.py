"""The pipeline: the orchestrator that composes the stages, and the per-job workspace."""
