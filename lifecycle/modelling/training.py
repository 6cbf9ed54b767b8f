"""Scoring candidates by k-fold cross-validation and fitting the chosen one."""

from __future__ import annotations

import time
import warnings
from typing import Any

import numpy as np
import pandas as pd
from sklearn.base import clone
from sklearn.metrics import f1_score, make_scorer
from sklearn.model_selection import KFold, StratifiedKFold, cross_val_score
from sklearn.pipeline import Pipeline

from lifecycle.dataset.config import METRIC_DIRECTIONS, DatasetConfig
from lifecycle.modelling.estimators import build_estimator
from lifecycle.modelling.features import features_and_target

# The promotion metric's cross-validation scorer (sklearn maximises, so errors come negated).
CV_SCORERS = {
    "test_rmse": "neg_root_mean_squared_error",
    "test_mae": "neg_mean_absolute_error",
    "test_rmsle": "neg_root_mean_squared_log_error",
    "test_r2": "r2",
    "test_roc_auc": "roc_auc",
    "test_accuracy": "accuracy",
    "test_log_loss": "neg_log_loss",
}


def cv_scorer(config: DatasetConfig):
    if config.registry.metric == "test_f1":
        return make_scorer(f1_score, pos_label=config.target.classes[-1])
    return CV_SCORERS[config.registry.metric]


def cv_folds(config: DatasetConfig):
    kind = StratifiedKFold if config.task == "classification" else KFold
    return kind(n_splits=config.training.cv_folds, shuffle=True, random_state=config.split.seed)


def cross_validate_candidate(
    train: pd.DataFrame, featurizer: Pipeline, candidate: dict[str, Any], config: DatasetConfig
) -> dict[str, Any]:
    """Mean and spread of the promotion metric over the folds, in the metric's own sign.

    The featurizer is cloned, so it is refitted inside each fold and never sees the fold's
    validation rows. A fold that cannot be fitted or scored (e.g. RMSLE of a linear model's
    negative predictions) makes the candidate unusable: `error` says why, and `mean` and `std` are None.
    """
    X, y = features_and_target(train, config)
    model = Pipeline([("features", clone(featurizer)), ("model", build_estimator(candidate, config))])
    started = time.perf_counter()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        scores = cross_val_score(model, X, y, cv=cv_folds(config), scoring=cv_scorer(config))
    if METRIC_DIRECTIONS[config.registry.metric] == "min":
        scores = -scores
    failed = int(np.isnan(scores).sum())
    result = {
        "candidate": candidate,
        "metric": config.registry.metric.replace("test_", "cv_"),
        "mean": None if failed else float(scores.mean()),
        "std": None if failed else float(scores.std()),
        "seconds": round(time.perf_counter() - started, 3),
        "error": None,
    }
    if failed:
        result["error"] = f"{failed} of {len(scores)} folds could not be scored: {_fold_failure(caught)}"
    return result


def _fold_failure(caught: list[warnings.WarningMessage]) -> str:
    """sklearn's reason for a NaN fold score: the last line of the traceback in its warning."""
    for warning in caught:
        text = str(warning.message)
        if "nan" in text.lower():
            lines = [line.strip() for line in text.splitlines() if line.strip()]
            return lines[-1][:500]
    return "no reason given"


def select_best(results: list[dict[str, Any]], config: DatasetConfig) -> dict[str, Any]:
    """The best mean score among the candidates that could be scored; ties go to the candidate
    listed first in the config."""
    if not results:
        raise ValueError("no candidate results to choose from")
    usable = [r for r in results if r.get("error") is None]
    if not usable:
        raise ValueError(
            "no candidate could be cross-validated: "
            + "; ".join(f"{r['candidate']['id']}: {r['error']}" for r in results)
        )
    sign = 1 if METRIC_DIRECTIONS[config.registry.metric] == "min" else -1
    return min(usable, key=lambda r: (sign * r["mean"], r["candidate"]["id"]))


def fit_model(train: pd.DataFrame, featurizer: Pipeline, candidate: dict[str, Any], config: DatasetConfig) -> Pipeline:
    """ONE pipeline, featurizer + estimator, fitted on the whole training split."""
    X, y = features_and_target(train, config)
    model = Pipeline([("features", clone(featurizer)), ("model", build_estimator(candidate, config))])
    return model.fit(X, y)
