"""Turning a prepared frame into a fitted, evaluated model, and a model into checked bytes."""

from lifecycle.modelling.estimators import build_estimator, expand_search_space
from lifecycle.modelling.evaluation import evaluation_report, holdout_metrics
from lifecycle.modelling.features import (
    PrepareInputs,
    build_featurizer,
    features_and_target,
)
from lifecycle.modelling.serialization import (
    UntrustedModelError,
    load_model_file,
    save_model_file,
)
from lifecycle.modelling.training import (
    cross_validate_candidate,
    fit_model,
    select_best,
)

__all__ = [
    "PrepareInputs",
    "UntrustedModelError",
    "build_estimator",
    "build_featurizer",
    "cross_validate_candidate",
    "evaluation_report",
    "expand_search_space",
    "features_and_target",
    "fit_model",
    "holdout_metrics",
    "load_model_file",
    "save_model_file",
    "select_best",
]
