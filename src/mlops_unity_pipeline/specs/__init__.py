"""The user-facing specifications: what to train (`UnityAssetSpec`), how (`RLTrainingConfig`), and when
(`TrainingJob`, `TrainingSchedule`), plus the outcome (`TrainingResult`).

Field names follow the setup guides, so their code runs as written. Every model rejects unknown fields and
validates values up front, because a typo found after an hour of training loses that hour.
"""

from .asset import UnityAssetSpec
from .base import (
    ALGORITHMS,
    LIMITS,
    MAX_SECONDS,
    _check_identifier,
    _check_safe_id,
    _Model,
    format_validation_error,
    parse_model,
)
from .documents import load_asset_spec, load_document, load_job
from .jobs import EvaluationSettings, Resources, TrainingJob, TrainingResult, TrainingSchedule, VertexSettings
from .training import RLTrainingConfig

__all__ = ["ALGORITHMS", "LIMITS", "MAX_SECONDS", "EvaluationSettings", "RLTrainingConfig",
           "Resources", "TrainingJob", "TrainingResult", "TrainingSchedule", "UnityAssetSpec", "VertexSettings",
           "_Model", "_check_identifier", "_check_safe_id", "format_validation_error", "load_asset_spec",
           "load_document", "load_job", "parse_model"]
