"""The training pipeline writes a model card for the version it registers: a KFP HTML artifact of the
register step, and `model_card.html` in the version's MLflow run."""

import html
import json
import os
import re
from pathlib import Path

import mlflow
import pytest
from mlflow import MlflowClient

from lifecycle.modelling.model_card import MODEL_CARD_FILE, metric_text

pytestmark = pytest.mark.pipeline


def test_the_card_is_an_output_artifact_of_the_register_step(ames_run):
    card = Path(ames_run["model_card"])
    assert card.is_file() and card.name == "model_card" and card.parent.name == "register-model"
    outputs = json.loads((card.parent / "executor_output.json").read_text())
    assert "model_card" not in outputs.get("parameterValues", {})  # an artifact, not a parameter
    page = card.read_text()
    assert page.startswith("<!doctype html>") and f"Model card: {ames_run['model_name']} v{ames_run['version']}" in page


def test_the_card_holds_the_runs_numbers(ames_run):
    page = html.unescape(Path(ames_run["model_card"]).read_text())
    metrics = ames_run["metrics"]
    for name, value in metrics.items():
        assert re.search(rf"<td>{name}( ★)?</td><td class=\"number\">{re.escape(metric_text(value))}</td>", page), name
    assert "this version (v{})".format(ames_run["version"]) in page
    # every candidate of the config's search space, with its CV score; the fitted one marked
    assert len(re.findall(r"<td>0\d-(hist_gradient_boosting|ridge)</td>", page)) == 4
    assert len(re.findall(r"<tr class=chosen>", page)) == 1
    assert re.search(r"cv_rmsle \(mean ± std over folds\)", page) and page.count(" ± ") >= 4
    assert "586" in page and "2,344" in page and "test_size 0.2, seed 42" in page
    promotion = ames_run["promotion"]
    assert f"Why: {promotion['reason']}" in page
    if promotion.get("champion_version") is None:
        assert "There was no champion to compare with" in page
    else:
        assert f"champion (v{promotion['champion_version']}) on the same holdout" in page
    assert "Most important features" in page and "MS_Zoning" in page  # a rare-category limit of Ames


def test_the_card_sits_beside_the_version_in_mlflow(ames_run):
    client = MlflowClient(os.environ["MLFLOW_TRACKING_URI"])
    version = client.get_model_version(ames_run["model_name"], ames_run["version"])
    assert version.run_id == ames_run["run_id"]
    assert MODEL_CARD_FILE in {a.path for a in client.list_artifacts(version.run_id)}
    logged = mlflow.artifacts.load_text(f"runs:/{version.run_id}/{MODEL_CARD_FILE}")
    assert logged == Path(ames_run["model_card"]).read_text()
