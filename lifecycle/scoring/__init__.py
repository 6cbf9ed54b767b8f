"""Batch scoring with a registered model."""

from lifecycle.scoring.batch import (
    SchemaMismatchError,
    ScoringResult,
    UnscorableRowsError,
    score_file,
)

__all__ = ["SchemaMismatchError", "ScoringResult", "UnscorableRowsError", "score_file"]
