"""Estimator families a config's search space may name, and how candidates are built from it."""

from __future__ import annotations

import importlib
import itertools
import json
from typing import Any

import numpy as np

from lifecycle.dataset.config import DatasetConfig

# family -> task -> sklearn class. Adding a family is one line here and a name in a config.
ESTIMATORS: dict[str, dict[str, str]] = {
    "hist_gradient_boosting": {
        "regression": "sklearn.ensemble.HistGradientBoostingRegressor",
        "classification": "sklearn.ensemble.HistGradientBoostingClassifier",
    },
    "random_forest": {
        "regression": "sklearn.ensemble.RandomForestRegressor",
        "classification": "sklearn.ensemble.RandomForestClassifier",
    },
    "ridge": {"regression": "sklearn.linear_model.Ridge"},
    "elastic_net": {"regression": "sklearn.linear_model.ElasticNet"},
    "logistic_regression": {"classification": "sklearn.linear_model.LogisticRegression"},
}

# Defaults that make a family behave well out of the box; a config's params override them.
FAMILY_DEFAULTS: dict[str, dict[str, Any]] = {
    "logistic_regression": {"max_iter": 2000},
}


class SearchSpaceError(ValueError):
    """A search space naming an unknown estimator or parameter."""


def expand_search_space(config: DatasetConfig) -> list[dict[str, Any]]:
    """Every (family, parameter combination) in config order, each with a stable id."""
    candidates = []
    for family in config.training.search_space:
        if family.estimator not in ESTIMATORS:
            raise SearchSpaceError(
                f"training.search_space: unknown estimator {family.estimator!r}; known: {sorted(ESTIMATORS)}"
            )
        if config.task not in ESTIMATORS[family.estimator]:
            raise SearchSpaceError(
                f"training.search_space: estimator {family.estimator!r} does not support task {config.task!r}"
            )
        names = list(family.params)
        for values in itertools.product(*(family.params[n] for n in names)):
            params = dict(zip(names, values, strict=False))
            candidates.append(
                {"id": f"{len(candidates):02d}-{family.estimator}", "estimator": family.estimator, "params": params}
            )
    for candidate in candidates:
        build_estimator(candidate, config)  # fail on an unknown parameter before any fitting
    return candidates


def candidate_to_json(candidate: dict[str, Any]) -> str:
    # Candidates travel as JSON text: KFP's local runner turns ints inside lists into floats.
    return json.dumps(candidate, sort_keys=True)


def build_estimator(candidate: dict[str, Any], config: DatasetConfig):
    module, _, name = ESTIMATORS[candidate["estimator"]][config.task].rpartition(".")
    cls = getattr(importlib.import_module(module), name)
    params = {**FAMILY_DEFAULTS.get(candidate["estimator"], {}), **candidate["params"]}
    if "random_state" in cls().get_params():
        params.setdefault("random_state", config.split.seed)
    try:
        estimator = cls(**params)
    except TypeError as exc:
        raise SearchSpaceError(f"training.search_space: {candidate['estimator']}: {exc}") from None
    if config.task == "regression" and config.target.transform == "log":
        from sklearn.compose import TransformedTargetRegressor

        estimator = TransformedTargetRegressor(regressor=estimator, func=np.log, inverse_func=np.exp)
    return estimator
