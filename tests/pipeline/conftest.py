"""Whole pipelines through kfp.local, against one real MLflow store (SQLite) for the session."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from mlflow import MlflowClient

from pipelines.run_local import ensure_experiment, init_local_runner, run_training
from tests.conftest import AMES_CONFIG, TELCO_CONFIG


@pytest.fixture(scope="session")
def workdir(tmp_path_factory) -> Path:
    """A pipeline root and MLflow store shared by every pipeline test, as `make run` sets them up."""
    root = tmp_path_factory.mktemp("local")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{root / 'mlflow.db'}")
        patch.setenv("OMP_NUM_THREADS", "1")
        for name in ("ames-house-prices", "telco-churn", "ames-parquet", "telco-cli"):
            ensure_experiment(name, str(root / "mlartifacts"))
        yield root


@pytest.fixture(scope="session")
def ames_run(workdir) -> dict:
    """The main job on its defaults: the bundled Ames data and config."""
    return run_training(AMES_CONFIG, workdir)


@pytest.fixture(scope="session")
def telco_run(workdir) -> dict:
    return run_training(TELCO_CONFIG, workdir)


@pytest.fixture
def local_runner(workdir):
    init_local_runner(workdir)
    return workdir


def registry_state(model_name: str) -> dict:
    """Every version and alias of a registered model: what "untouched" is checked against."""
    client = MlflowClient(os.environ["MLFLOW_TRACKING_URI"])
    # search results may omit aliases; get_model_version always carries them.
    versions = client.search_model_versions(f"name='{model_name}'")
    return {
        str(v.version): sorted(client.get_model_version(model_name, v.version).aliases)
        for v in versions
    }
