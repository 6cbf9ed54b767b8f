"""Registration and promotion against a real MLflow registry (SQLite)."""

import pytest
from mlflow import MlflowClient
from mlflow.exceptions import MlflowException
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import FunctionTransformer

from lifecycle.estimators import build_estimator, expand_search_space
from lifecycle.evaluation import holdout_metrics
from lifecycle.features import build_featurizer, features_and_target
from lifecycle.process import process_frame, split_frame
from lifecycle.registry import RegistrationError, register_model
from tests.conftest import quick

NAME = "ames-test"


@pytest.fixture(scope="module")
def ames_parts(ames_raw, ames_config):
    config = quick(ames_config, cv_folds=3, search_space=[{"estimator": "ridge", "params": {"alpha": [10.0, 100000.0]}}])
    train, test = split_frame(process_frame(ames_raw, config), config)
    featurizer = build_featurizer(config).fit(features_and_target(train, config)[0])
    good, bad = (
        Pipeline([("features", featurizer), ("model", build_estimator(c, config))])
        .fit(*features_and_target(train, config))
        for c in expand_search_space(config)
    )
    return config, train, test, good, bad


def register(parts, model, margin=0.0, **lineage):
    config, train, test, _, _ = parts
    return register_model(
        model, train, test, config, holdout_metrics(model, test, config), NAME, margin,
        lineage={"git_commit": "abc123", "data_sha256": "d" * 64, **lineage}, artifacts={}, params={"candidate": "x"},
    )


def aliases(client):
    return {a: str(client.get_model_version_by_alias(NAME, a).version) for a in ("champion", "challenger")}


def test_first_version_becomes_champion_with_lineage_and_signature(mlflow_store, ames_parts):
    registration = register(ames_parts, ames_parts[3])
    assert registration.version == "1" and registration.aliases == ["challenger", "champion"]
    client = MlflowClient()
    version = client.get_model_version(NAME, "1")
    assert version.tags["git_commit"] == "abc123" and version.tags["data_sha256"] == "d" * 64
    assert "test_rmsle" in version.tags
    import mlflow.models

    info = mlflow.models.get_model_info(f"models:/{NAME}@champion")
    assert info.flavors["sklearn"]["serialization_format"] == "skops"
    names = info.signature.inputs.input_names()
    assert "Neighborhood" in names and "Sale_Price" not in names
    loaded = mlflow.sklearn.load_model(f"models:/{NAME}@champion")
    X = features_and_target(ames_parts[2], ames_parts[0])[0].head(5)
    assert (loaded.predict(X) == ames_parts[3].predict(X)).all()


def test_equal_or_worse_model_never_takes_champion(mlflow_store, ames_parts):
    register(ames_parts, ames_parts[3])
    same = register(ames_parts, ames_parts[3])
    worse = register(ames_parts, ames_parts[4])
    assert same.aliases == ["challenger"] and "does not beat champion v1" in same.promotion["reason"]
    assert worse.aliases == ["challenger"]
    assert aliases(MlflowClient()) == {"champion": "1", "challenger": "3"}


def test_better_model_takes_champion_only_beyond_the_margin(mlflow_store, ames_parts):
    register(ames_parts, ames_parts[4])
    within = register(ames_parts, ames_parts[3], margin=10.0)
    assert within.aliases == ["challenger"]
    beyond = register(ames_parts, ames_parts[3], margin=0.01)
    assert beyond.aliases == ["challenger", "champion"]
    assert beyond.promotion["champion_version"] == "1"
    assert aliases(MlflowClient()) == {"champion": "3", "challenger": "3"}


def test_failure_after_version_exists_rolls_back(mlflow_store, ames_parts, monkeypatch):
    register(ames_parts, ames_parts[4])
    original = MlflowClient.set_registered_model_alias

    def failing(self, name, alias, version):
        if alias == "champion":
            raise MlflowException("registry went away")
        return original(self, name, alias, version)

    monkeypatch.setattr(MlflowClient, "set_registered_model_alias", failing)
    with pytest.raises(RegistrationError, match="registering ames-test v2 failed and was rolled back: registry went away"):
        register(ames_parts, ames_parts[3])
    monkeypatch.undo()
    client = MlflowClient()
    assert [str(v.version) for v in client.search_model_versions(f"name='{NAME}'")] == ["1"]
    assert aliases(client) == {"champion": "1", "challenger": "1"}


def test_unreviewed_types_are_refused_before_anything_is_stored(mlflow_store, ames_parts):
    config, train, test, good, _ = ames_parts
    odd = Pipeline([("odd", FunctionTransformer(lambda X: X)), ("model", good)]).fit(*features_and_target(train, config))
    with pytest.raises(RegistrationError, match="types skops does not trust"):
        register(ames_parts, odd)
    assert MlflowClient().search_model_versions(f"name='{NAME}'") == []


def test_tracking_uri_is_required(ames_parts, monkeypatch):
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    with pytest.raises(RegistrationError, match="MLFLOW_TRACKING_URI is not set"):
        register(ames_parts, ames_parts[3])
