"""Shared fixtures: the bundled data and configs, and a real MLflow store per test."""

from __future__ import annotations

import os
from pathlib import Path

import pandas as pd
import pytest

from lifecycle.dataset.config import config_as_json, load_config, parse_config
from tools.run_local import ensure_experiment, run_training

ROOT = Path(__file__).resolve().parents[1]
AMES_CONFIG = ROOT / "configs" / "ames.yaml"
TELCO_CONFIG = ROOT / "configs" / "telco_churn.yaml"
AMES_DATA = ROOT / "data" / "ames.csv.gz"
TELCO_DATA = ROOT / "data" / "telco_churn.csv.gz"


@pytest.fixture(scope="session")
def ames_config():
    return load_config(AMES_CONFIG)


@pytest.fixture(scope="session")
def telco_config():
    return load_config(TELCO_CONFIG)


@pytest.fixture(scope="session")
def ames_raw() -> pd.DataFrame:
    return pd.read_csv(AMES_DATA)


@pytest.fixture(scope="session")
def telco_raw() -> pd.DataFrame:
    return pd.read_csv(TELCO_DATA)


def quick(config, **training):
    """The same config with a small search space, so a test fits in seconds."""
    raw = config.model_dump(mode="json")
    raw["training"] = training or {
        "cv_folds": 3,
        "search_space": [
            {"estimator": "ridge", "params": {"alpha": [10.0]}}
            if config.task == "regression"
            else {"estimator": "logistic_regression", "params": {"C": [1.0]}}
        ],
    }
    return parse_config(raw)


@pytest.fixture
def mlflow_store(tmp_path, monkeypatch) -> str:
    """A real MLflow tracking store and registry on SQLite, private to the test."""
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    monkeypatch.chdir(tmp_path)  # a SQLite store puts run artifacts in ./mlruns
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    import mlflow

    mlflow.set_tracking_uri(uri)
    yield uri
    mlflow.set_tracking_uri(None)


@pytest.fixture(autouse=True)
def tracking_uri_as_found():
    """Each test leaves MLflow's tracking URI as it found it. `mlflow.set_tracking_uri(None)` also
    unsets MLFLOW_TRACKING_URI, which every later predictor subprocess would then go without."""
    import mlflow

    variable, uri = os.environ.get("MLFLOW_TRACKING_URI"), mlflow.get_tracking_uri()
    yield
    if os.environ.get("MLFLOW_TRACKING_URI") != variable or mlflow.get_tracking_uri() != uri:
        mlflow.set_tracking_uri(None)
        if variable is not None:
            os.environ["MLFLOW_TRACKING_URI"] = variable


# The training runs below are shared by every package that needs a model trained by the project's
# own pipeline (pipeline tests, serving tests): each runs once per session.
@pytest.fixture(scope="session")
def workdir(tmp_path_factory) -> Path:
    """A pipeline root and MLflow store shared by the session's pipeline runs, as `make run` sets them up."""
    root = tmp_path_factory.mktemp("local")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{root / 'mlflow.db'}")
        patch.setenv("OMP_NUM_THREADS", "1")
        for name in ("ames-house-prices", "telco-churn", "ames-parquet", "telco-cli", "telco-monitoring"):
            ensure_experiment(name, str(root / "mlartifacts"))
        yield root


@pytest.fixture(scope="session")
def ames_run(workdir) -> dict:
    """The main job on its defaults: the bundled Ames data and config."""
    return run_training(AMES_CONFIG, workdir)


@pytest.fixture(scope="session")
def telco_run(workdir) -> dict:
    return run_training(TELCO_CONFIG, workdir)


__all__ = ["quick", "config_as_json"]
