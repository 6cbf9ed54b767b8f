"""Credentials reach steps only through the environment: none of the stack's credential values (S3
key and secret, MLflow passwords) appears in compiled YAML, in what the steps print, in the
pipeline root, or in what MLflow keeps."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from mlflow import MlflowClient

from tests.integration.conftest import MODEL

# Also `pipeline`: they run whole pipelines, which `make test-fast` leaves out.
pytestmark = [pytest.mark.integration, pytest.mark.pipeline]
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def credentials(stack) -> list[str]:
    """The S3 key and secret, the steps' MLflow password, and the MLflow admin's password."""
    values = stack.secrets
    # Meaningful only if the steps really had them: the environment is how they get them.
    assert os.environ["AWS_ACCESS_KEY_ID"] == values[0] and os.environ["AWS_SECRET_ACCESS_KEY"] == values[1]
    assert os.environ["MLFLOW_TRACKING_PASSWORD"] == stack.mlflow_credentials[1] == values[2]
    assert stack.admin_credentials[1] in values
    return values


def leaks(data: bytes, credentials: list[str]) -> list[str]:
    return [f"{value[:4]}..." for value in credentials if value.encode() in data]


def test_compiled_yaml_holds_no_credentials(credentials, tmp_path):
    # Compiled with the credentials in the environment, as a CI job holding them would.
    subprocess.run(
        [sys.executable, str(ROOT / "compile.py"), "--output-dir", str(tmp_path)],
        check=True,
        cwd=ROOT,
        env=dict(os.environ),
        capture_output=True,
    )
    files = sorted(tmp_path.glob("*.yaml")) + sorted((ROOT / "compiled").glob("*.yaml"))
    assert len(files) >= 4
    for path in files:
        assert leaks(path.read_bytes(), credentials) == [], path


def test_step_logs_hold_no_credentials(credentials, trained, batch_scored, stack):
    logs = [trained.log, batch_scored["log"], stack.tracking.log_path]
    assert "register-model" in trained.log.read_text() and "score-batch" in batch_scored["log"].read_text()
    for path in logs:
        assert leaks(path.read_bytes(), credentials) == [], path


def test_pipeline_root_holds_no_credentials(credentials, trained, batch_scored, stack):
    files = [p for p in (stack.workdir / "pipeline_root").rglob("*") if p.is_file()]
    assert any(p.name == "executor_output.json" for p in files) or len(files) > 10
    for path in files:
        assert leaks(path.read_bytes(), credentials) == [], path


def test_mlflow_run_and_version_hold_no_credentials(credentials, trained, tmp_path):
    import mlflow.artifacts

    client = MlflowClient()
    registration = trained.registration
    run = client.get_run(registration["run_id"])
    version = client.get_model_version(MODEL, registration["version"])
    recorded = repr((run.data.params, run.data.tags, version.tags, client.get_registered_model(MODEL).tags))
    assert "data_uri" in recorded and leaks(recorded.encode(), credentials) == []
    artifacts = Path(mlflow.artifacts.download_artifacts(run_id=registration["run_id"], dst_path=str(tmp_path)))
    files = [p for p in artifacts.rglob("*") if p.is_file()]
    assert any(p.name == "config.json" for p in files)
    for path in files:
        assert leaks(path.read_bytes(), credentials) == [], path
