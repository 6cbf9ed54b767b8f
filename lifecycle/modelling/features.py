"""The feature transformer: derived columns, imputation, scaling and one-hot encoding.

It is fitted on the training split only and becomes the first step of the registered model, so a
client sends raw columns and gets the same transformation the model was trained with.
"""

from __future__ import annotations

import pandas as pd
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.compose import ColumnTransformer
from sklearn.impute import SimpleImputer
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

from lifecycle.dataset.config import DatasetConfig
from lifecycle.dataset.expressions import evaluate


class PrepareInputs(TransformerMixin, BaseEstimator):
    """Fills blanks that mean a level and adds columns computed by arithmetic expressions over
    the input columns (e.g. {"Total_SF": "A + B"}, see lifecycle.dataset.expressions).

    A top-level class (not a FunctionTransformer around a lambda) so the model can be stored
    in skops format, which refuses functions it cannot name.
    """

    def __init__(self, fill_values: dict | None = None, expressions: dict[str, str] | None = None):
        self.fill_values = fill_values
        self.expressions = expressions

    def fit(self, X, y=None):
        self.feature_names_in_ = list(X.columns)
        return self

    def transform(self, X):
        out = X.copy()
        for name, value in (self.fill_values or {}).items():
            out[name] = out[name].fillna(value)
        for name, expression in (self.expressions or {}).items():
            out[name] = evaluate(expression, out)
        return out

    def get_feature_names_out(self, input_features=None):
        return list(self.feature_names_in_) + list(self.expressions or {})


def build_featurizer(config: DatasetConfig) -> Pipeline:
    """An unfitted transformer for the config's feature columns (plain lists: skops needs them)."""
    numeric = list(config.numeric_columns) + [n for n in config.features.derived if n not in config.features.drop]
    categorical = list(config.categorical_columns)
    numeric_steps = [("impute", SimpleImputer(strategy="median"))]
    if config.features.scale_numeric:
        numeric_steps.append(("scale", StandardScaler()))
    columns = ColumnTransformer(
        [
            ("numeric", Pipeline(numeric_steps), numeric),
            (
                "categorical",
                Pipeline(
                    [
                        ("impute", SimpleImputer(strategy="constant", fill_value="missing")),
                        (
                            "one_hot",
                            OneHotEncoder(
                                handle_unknown="infrequent_if_exist",
                                min_frequency=config.features.one_hot_min_frequency,
                                sparse_output=False,
                            ),
                        ),
                    ]
                ),
                categorical,
            ),
        ],
        remainder="drop",
    )
    prepare = PrepareInputs(dict(config.features.fill_values), dict(config.features.derived))
    return Pipeline([("prepare", prepare), ("columns", columns)])


def features_and_target(frame: pd.DataFrame, config: DatasetConfig) -> tuple[pd.DataFrame, pd.Series]:
    """Splits a processed frame into the model's raw input columns and its target."""
    inputs = [name for name in config.columns if name in frame]
    return frame.loc[:, inputs], frame[config.target.name]
