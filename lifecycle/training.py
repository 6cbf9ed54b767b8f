"""Scoring candidates by k-fold cross-validation and fitting the chosen one."""

from __future__ import annotations

import time
from typing import Any

import pandas as pd
from sklearn.base import clone
from sklearn.metrics import f1_score, make_scorer
from sklearn.model_selection import KFold, StratifiedKFold, cross_val_score
from sklearn.pipeline import Pipeline

from lifecycle.config import METRIC_DIRECTIONS, DatasetConfig
from lifecycle.estimators import build_estimator
from lifecycle.features import features_and_target

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
    validation rows.
    """
    X, y = features_and_target(train, config)
    model = Pipeline([("features", clone(featurizer)), ("model", build_estimator(candidate, config))])
    started = time.perf_counter()
    scores = cross_val_score(model, X, y, cv=cv_folds(config), scoring=cv_scorer(config))
    if METRIC_DIRECTIONS[config.registry.metric] == "min":
        scores = -scores
    return {
        "candidate": candidate,
        "metric": config.registry.metric.replace("test_", "cv_"),
        "mean": float(scores.mean()),
        "std": float(scores.std()),
        "seconds": round(time.perf_counter() - started, 3),
    }


def select_best(results: list[dict[str, Any]], config: DatasetConfig) -> dict[str, Any]:
    """The best mean score; ties go to the candidate listed first in the config."""
    if not results:
        raise ValueError("no candidate results to choose from")
    sign = 1 if METRIC_DIRECTIONS[config.registry.metric] == "min" else -1
    return min(results, key=lambda r: (sign * r["mean"], r["candidate"]["id"]))


def fit_model(
    train: pd.DataFrame, featurizer: Pipeline, candidate: dict[str, Any], config: DatasetConfig
) -> Pipeline:
    """ONE pipeline, featurizer + estimator, fitted on the whole training split."""
    X, y = features_and_target(train, config)
    model = Pipeline([("features", clone(featurizer)), ("model", build_estimator(candidate, config))])
    return model.fit(X, y)
