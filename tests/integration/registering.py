"""A register step in a process of its own, for racing two of them against one tracking server.

Spawned processes import this module by name, so it holds no pytest fixtures.
"""

from __future__ import annotations

from tests.conftest import AMES_CONFIG, AMES_DATA, quick


def train_and_register(model_name: str, alpha: float, start, results) -> None:
    """Fits the project's featurizer + ridge(alpha) on Ames, waits at `start`, then registers."""
    import pandas as pd

    from lifecycle.dataset.config import load_config
    from lifecycle.dataset.process import process_frame, split_frame
    from lifecycle.modelling.estimators import build_estimator, expand_search_space
    from lifecycle.modelling.evaluation import holdout_metrics
    from lifecycle.modelling.features import build_featurizer, features_and_target
    from lifecycle.registry.registration import register_model

    config = quick(
        load_config(AMES_CONFIG), cv_folds=3, search_space=[{"estimator": "ridge", "params": {"alpha": [alpha]}}]
    )
    train, test = split_frame(process_frame(pd.read_csv(AMES_DATA), config), config)
    from sklearn.pipeline import Pipeline

    X, y = features_and_target(train, config)
    candidate = expand_search_space(config)[0]
    model = Pipeline([("features", build_featurizer(config)), ("model", build_estimator(candidate, config))]).fit(X, y)
    metrics = holdout_metrics(model, test, config)
    start.wait(timeout=120)
    try:
        registration = register_model(
            model,
            train,
            test,
            config,
            metrics,
            model_name,
            0.0,
            lineage={"candidate_alpha": str(alpha)},
            artifacts={},
            params={"alpha": alpha},
        )
        results.put(("registered", alpha, registration.to_dict()))
    except Exception as exc:
        results.put(("failed", alpha, str(exc)))
