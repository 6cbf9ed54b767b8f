"""Whole pipelines through kfp.local, against the session's MLflow store (`workdir` in tests/conftest.py)."""

from __future__ import annotations

import os

import pytest
from mlflow import MlflowClient

from tools.run_local import init_local_runner


@pytest.fixture
def local_runner(workdir):
    init_local_runner(workdir)
    return workdir


def registry_state(model_name: str) -> dict:
    """Every version and alias of a registered model: what "untouched" is checked against."""
    client = MlflowClient(os.environ["MLFLOW_TRACKING_URI"])
    # search results may omit aliases; get_model_version always carries them.
    versions = client.search_model_versions(f"name='{model_name}'")
    return {str(v.version): sorted(client.get_model_version(model_name, v.version).aliases) for v in versions}
