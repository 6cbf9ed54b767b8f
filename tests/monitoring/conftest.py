"""Two quickly fitted models built from the project's parts, and the reference profile of each one's
training split: Telco churn (logistic regression) and Ames prices (gradient boosting on log price)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import pytest

from lifecycle.dataset.process import process_frame, split_frame
from lifecycle.modelling.evaluation import positive_proba
from lifecycle.modelling.features import build_featurizer, features_and_target
from lifecycle.monitoring.profile import build_profile


@dataclass(frozen=True)
class Fitted:
    config: object
    model: object
    train: pd.DataFrame  # the model's input columns
    test: pd.DataFrame
    profile: dict

    def predict(self, rows: pd.DataFrame) -> np.ndarray:
        if self.config.task == "classification":
            return positive_proba(self.model, rows, self.config.target.classes[-1])
        return np.asarray(self.model.predict(rows), dtype="float64")


def fit(raw: pd.DataFrame, config, estimator) -> Fitted:
    from sklearn.pipeline import Pipeline

    train, test = split_frame(process_frame(raw, config), config)
    X, y = features_and_target(train, config)
    model = Pipeline([("features", build_featurizer(config)), ("model", estimator)]).fit(X, y)
    X_test, _ = features_and_target(test, config)
    fitted = Fitted(config, model, X, X_test, {})
    return Fitted(config, model, X, X_test, build_profile(X, fitted.predict(X), config))


@pytest.fixture(scope="session")
def telco(telco_raw, telco_config) -> Fitted:
    from sklearn.linear_model import LogisticRegression

    return fit(telco_raw, telco_config, LogisticRegression(max_iter=2000))


@pytest.fixture(scope="session")
def ames(ames_raw, ames_config) -> Fitted:
    from sklearn.compose import TransformedTargetRegressor
    from sklearn.ensemble import HistGradientBoostingRegressor

    regressor = HistGradientBoostingRegressor(max_iter=60, max_leaf_nodes=15, early_stopping=False, random_state=0)
    return fit(ames_raw, ames_config, TransformedTargetRegressor(regressor=regressor, func=np.log, inverse_func=np.exp))
