"""The loop after deploy, walked as a team would through kfp.local and a real MLflow registry:
scoring that checks drift, retraining on drift, promotion only when better, a person's approval,
rollback and the history of every move."""

from __future__ import annotations

import html
import json
import os
from pathlib import Path

import pytest
from mlflow import MlflowClient

from lifecycle.dataset.config import parse_config
from lifecycle.monitoring.reference import PROFILE_ARTIFACT, PROFILE_SHA256_TAG, profile_sha256
from tests.conftest import TELCO_DATA
from tools import promotion
from tools.monitor import run_monitoring
from tools.run_local import run_training

pytestmark = pytest.mark.pipeline

NAME = "telco-monitoring"


def configured(telco_config, estimator: dict, promotion_mode: str = "auto"):
    raw = telco_config.model_dump(mode="json")
    raw["training"] = {"cv_folds": 3, "search_space": [estimator]}
    raw["registry"]["promotion"] = promotion_mode
    return parse_config(raw)


# A stump is clearly worse than a logistic regression on this data, so "better" is not a coin toss.
STUMP = {"estimator": "random_forest", "params": {"n_estimators": [1], "max_depth": [1]}}
LOGISTIC = {"estimator": "logistic_regression", "params": {"C": [1.0]}}


def champion(client) -> str:
    return str(client.get_model_version_by_alias(NAME, "champion").version)


@pytest.fixture(scope="module")
def loop(workdir, telco_config, telco_raw, tmp_path_factory) -> dict:
    """Every step in order; each result kept for the tests below."""
    files = tmp_path_factory.mktemp("monitoring")
    rows = telco_raw.drop(columns=["churn"])
    resample = files / "resample.csv"
    rows.sample(2000, replace=True, random_state=1).to_csv(resample, index=False)
    month_to_month = files / "month_to_month.csv"
    rows[rows["contract"] == "Month-to-month"].to_csv(month_to_month, index=False)
    retrain_on = str(TELCO_DATA)
    stump, logistic = configured(telco_config, STUMP), configured(telco_config, LOGISTIC)
    client = MlflowClient(os.environ["MLFLOW_TRACKING_URI"])

    steps = {"first": run_training(stump, workdir, model_name=NAME)}
    steps["stable"] = run_monitoring(stump, str(resample), workdir, retrain_on, model_name=NAME)
    steps["champion_after_stable"] = champion(client)
    # Drifted, retrained with the same recipe: no better on the same holdout, so champion stays.
    steps["same_recipe"] = run_monitoring(stump, str(month_to_month), workdir, retrain_on, model_name=NAME)
    steps["champion_after_same_recipe"] = champion(client)
    # Drifted, retrained with a better recipe, but a person must approve.
    manual = configured(telco_config, LOGISTIC, "manual")
    steps["manual"] = run_monitoring(manual, str(month_to_month), workdir, retrain_on, model_name=NAME)
    steps["champion_after_manual"] = champion(client)
    approved = str(steps["manual"]["registration"]["version"])
    steps["approve"] = promotion.main(["approve", "--model", NAME, "--version", approved, "--by", "reviewer"])
    steps["champion_after_approve"] = champion(client)
    steps["rollback"] = promotion.main(["rollback", "--model", NAME, "--by", "on-call"])
    steps["champion_after_rollback"] = champion(client)
    # Drifted, retrained with the better recipe in automatic mode: champion moves.
    steps["better"] = run_monitoring(logistic, str(month_to_month), workdir, retrain_on, model_name=NAME)
    steps["champion_after_better"] = champion(client)
    steps["history"] = promotion.run(promotion.parse_args(["history", "--model", NAME, "--json"]))
    return steps


def test_rows_like_the_training_data_are_stable_and_retrain_nothing(loop):
    stable = loop["stable"]
    assert stable["verdict"] == "stable" and stable["drifted_columns"] == []
    assert stable["registration"] is None
    assert loop["champion_after_stable"] == str(loop["first"]["version"])
    assert stable["scored_with"] == f"models:/{NAME}/{loop['first']['version']}"


def test_month_to_month_customers_drift_on_contract(loop):
    # The stump's predictions need not move (it may split on another column); the logistic
    # champion's do, as lifecycle/monitoring's tests show on the same rows.
    drifted = loop["same_recipe"]
    assert drifted["verdict"] == "drifted"
    assert "contract" in drifted["drifted_columns"]


def test_a_retrained_version_no_better_leaves_the_champion(loop):
    registration = loop["same_recipe"]["registration"]
    assert str(registration["version"]) != str(loop["first"]["version"])
    assert registration["aliases"] == ["challenger"] and not registration["promotion"]["promote"]
    assert loop["champion_after_same_recipe"] == str(loop["first"]["version"])


def test_manual_mode_waits_for_approval_then_rollback_restores(loop):
    registration = loop["manual"]["registration"]
    assert registration["promotion"]["awaiting_approval"] and not registration["promotion"]["promote"]
    assert registration["aliases"] == ["challenger"]
    assert loop["champion_after_manual"] == str(loop["first"]["version"])
    assert loop["approve"] == 0 and loop["champion_after_approve"] == str(registration["version"])
    assert loop["rollback"] == 0 and loop["champion_after_rollback"] == str(loop["first"]["version"])


def test_a_better_retrained_version_becomes_champion(loop):
    registration = loop["better"]["registration"]
    assert registration["promotion"]["promote"] and "champion" in registration["aliases"]
    assert loop["champion_after_better"] == str(registration["version"])
    assert registration["metrics"]["test_roc_auc"] > loop["first"]["metrics"]["test_roc_auc"]


def test_history_lists_every_move_of_champion(loop):
    entries = json.loads(loop["history"])
    moves = [(e["reason"], e["from"], e["to"]) for e in entries]
    manual, better = (str(loop[k]["registration"]["version"]) for k in ("manual", "better"))
    first = str(loop["first"]["version"])
    assert moves == [
        ("promotion", None, first),
        ("approval", first, manual),
        ("rollback", manual, first),
        ("promotion", first, better),
    ]
    assert [e["by"] for e in entries][1:3] == ["reviewer", "on-call"]


def test_every_version_carries_its_verified_profile(loop):
    client = MlflowClient(os.environ["MLFLOW_TRACKING_URI"])
    version = client.get_model_version(NAME, str(loop["first"]["version"]))
    folder = Path(client.download_artifacts(version.run_id, PROFILE_ARTIFACT))
    text = folder.read_text()
    assert version.tags[PROFILE_SHA256_TAG] == profile_sha256(text)
    profile = json.loads(text)
    assert profile["rows"] == 5634 and profile["prediction"]["rows"] == 1409
    assert set(profile["categorical"]["contract"]["shares"]) == {"Month-to-month", "One year", "Two year"}


def test_the_drift_report_holds_the_runs_numbers_in_kfp_and_mlflow(loop):
    drifted = loop["same_recipe"]
    page = html.unescape(Path(drifted["report"]).read_text())
    assert "contract" in page and "drifted" in page
    client = MlflowClient(os.environ["MLFLOW_TRACKING_URI"])
    run_id = client.get_model_version(NAME, str(loop["first"]["version"])).run_id
    filed = Path(client.download_artifacts(run_id, drifted["report_in_mlflow"])).read_text()
    assert html.unescape(filed) == page
    figures_file = drifted["report_in_mlflow"].removesuffix(".html") + ".json"
    figures = json.loads(Path(client.download_artifacts(run_id, figures_file)).read_text())
    assert figures["verdict"] == "drifted" and "contract" in figures["drifted_columns"]
    assert figures["columns"]["contract"]["drifted"] and figures["columns"]["contract"]["psi"] > 1
    assert f"{figures['columns']['contract']['psi']:.3f}" in page
