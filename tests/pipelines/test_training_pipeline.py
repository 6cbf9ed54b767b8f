"""The training pipeline end to end through kfp.local, on both bundled data sets."""

import os

import mlflow
import pytest
from mlflow import MlflowClient

from tests.conftest import TELCO_CONFIG
from tests.pipelines.conftest import registry_state
from tools.run_local import run_training

pytestmark = pytest.mark.pipeline


def test_ames_meets_its_quality_bar_and_becomes_champion(ames_run):
    assert ames_run["model_name"] == "ames-house-prices"
    assert ames_run["aliases"] == ["challenger", "champion"]
    assert ames_run["metrics"]["test_rmsle"] <= 0.130
    assert set(ames_run["metrics"]) == {"test_rmse", "test_mae", "test_r2", "test_rmsle"}


def test_telco_meets_its_quality_bar(telco_run):
    assert telco_run["metrics"]["test_roc_auc"] >= 0.84
    assert set(telco_run["metrics"]) == {"test_roc_auc", "test_accuracy", "test_f1", "test_log_loss"}


def test_registered_version_carries_lineage_and_reports(ames_run):
    client = MlflowClient(os.environ["MLFLOW_TRACKING_URI"])
    version = client.get_model_version(ames_run["model_name"], ames_run["version"])
    for tag in ("data_sha256", "config_sha256", "git_commit", "pipeline_run_id", "test_rmsle", "profile_sha256"):
        assert tag in version.tags, tag
    assert len(version.tags["data_sha256"]) == 64
    artifacts = {a.path for a in client.list_artifacts(ames_run["run_id"], "reports")}
    assert artifacts == {"reports/evaluation.html", "reports/validation.md", "reports/profile.json"}
    page = mlflow.artifacts.load_text(f"runs:/{ames_run['run_id']}/reports/evaluation.html")
    assert "<h2>Holdout metrics (586 rows)</h2>" in page and page.count("data:image/png") == 2
    validation = mlflow.artifacts.load_text(f"runs:/{ames_run['run_id']}/reports/validation.md")
    assert validation.startswith("# Data validation: PASSED")
    info = mlflow.models.get_model_info(f"models:/{ames_run['model_name']}@champion")
    assert info.flavors["sklearn"]["serialization_format"] == "skops"
    assert "Mas_Vnr_Type" in info.signature.inputs.input_names()


def test_running_again_with_the_same_inputs_keeps_the_champion(telco_run, workdir):
    champion = registry_state("telco-churn")
    champion = [v for v, aliases in champion.items() if "champion" in aliases]
    again = run_training(TELCO_CONFIG, workdir)
    assert again["aliases"] == ["challenger"]
    assert again["metrics"] == telco_run["metrics"]
    assert "does not beat champion" in again["promotion"]["reason"]
    after = registry_state("telco-churn")
    assert [v for v, aliases in after.items() if "champion" in aliases] == champion
    assert after[again["version"]] == ["challenger"]
