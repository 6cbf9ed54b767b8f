import html
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from lifecycle.dataset.config import parse_config
from lifecycle.dataset.process import process_frame, split_frame
from lifecycle.modelling.estimators import expand_search_space
from lifecycle.modelling.evaluation import (
    evaluation_report,
    holdout_metrics,
    regression_metrics,
    roc_points,
)
from lifecycle.modelling.features import build_featurizer, features_and_target
from lifecycle.modelling.training import fit_model
from tests.conftest import quick


def test_regression_metric_names_and_rmsle_only_for_positive_targets():
    y = np.array([100.0, 200.0, 300.0])
    assert set(regression_metrics(y, y * 1.1)) == {"test_rmse", "test_mae", "test_r2", "test_rmsle"}
    assert "test_rmsle" not in regression_metrics(np.array([-1.0, 1.0, 2.0]), np.array([0.0, 1.0, 2.0]))


def test_roc_points_are_resampled():
    y = pd.Series(["No", "Yes"] * 500)
    points = roc_points(y, np.linspace(0, 1, 1000), "Yes")
    assert len(points["fpr"]) == len(points["tpr"]) == len(points["threshold"]) == 101
    assert points["tpr"][-1] == 1.0


def test_classification_metrics_and_report(telco_raw, telco_config):
    config = quick(telco_config)
    train, test = split_frame(process_frame(telco_raw, config), config)
    featurizer = build_featurizer(config).fit(features_and_target(train, config)[0])
    model = fit_model(train, featurizer, expand_search_space(config)[0], config)
    metrics = holdout_metrics(model, test, config)
    assert set(metrics) == {"test_roc_auc", "test_accuracy", "test_f1", "test_log_loss"}
    assert metrics["test_roc_auc"] > 0.8
    page = evaluation_report(model, test, config, metrics, {"model": "lr"})
    assert page.count("data:image/png;base64,") == 2
    assert "Calibration" not in page or "test_roc_auc" in page


# ---- the HTML report: names and values from the data, the config and the run are text -------------

PAYLOAD = "document.body.dataset.pwned='1'"
SCRIPT = f"<script>{PAYLOAD}</script>"
IMAGE = f'<img src=x onerror="{PAYLOAD}">'
MATH = "$\\undefined{x}$"  # matplotlib would parse it as math, and fail on the unknown symbol


def hostile_telco(telco_raw, telco_config):
    """The telco data and config with a column, the positive class and the data set named to attack the page."""
    column, positive = f"tenure {MATH} {SCRIPT}", f"Yes {IMAGE}"
    raw = quick(telco_config).model_dump(mode="json")
    raw["name"] = f"telco {SCRIPT}"
    raw["columns"][column] = raw["columns"].pop("tenure")
    raw["features"].update(derived={}, drop=[])
    raw["processing"]["clip"] = {}
    raw["target"]["classes"] = ["No", positive]
    frame = telco_raw.rename(columns={"tenure": column})
    frame["churn"] = frame["churn"].replace({"Yes": positive})
    return frame, parse_config(raw)


def rendered_dom(page: str, tmp_path: Path) -> str:
    """The page's DOM after headless Chromium has loaded it and run whatever scripts it would."""
    path = tmp_path / "report.html"
    path.write_text(page)
    done = subprocess.run(
        [
            "chromium",
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--virtual-time-budget=2000",
            "--dump-dom",
            path.as_uri(),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout


def test_the_report_shows_hostile_names_as_text(telco_raw, telco_config, tmp_path):
    frame, config = hostile_telco(telco_raw, telco_config)
    train, test = split_frame(process_frame(frame, config), config)
    featurizer = build_featurizer(config).fit(features_and_target(train, config)[0])
    model = fit_model(train, featurizer, expand_search_space(config)[0], config)
    metrics = holdout_metrics(model, test, config)
    page = evaluation_report(model, test, config, metrics, {"model": IMAGE, SCRIPT: "candidate <b>x</b>"})
    assert page.count("data:image/png;base64,") == 2  # the plots drew the names without reading math
    lowered = page.lower()
    assert "<script" not in lowered and "<img src=x" not in lowered and "<b>" not in lowered
    assert html.escape(f"telco {SCRIPT}") in page and html.escape(IMAGE) in page
    if shutil.which("chromium") is None:
        pytest.skip("chromium is not installed: the escaping is checked statically above")
    control = rendered_dom(f"<html><body>{SCRIPT}{IMAGE}</body></html>", tmp_path)
    assert 'data-pwned="1"' in control  # this browser runs such payloads when they are markup
    dom = rendered_dom(page, tmp_path)
    assert "data-pwned" not in dom.split("<body", 1)[1].split(">", 1)[0]
    assert "<script" not in dom.lower() and '<img src="x"' not in dom
    assert f"Evaluation: telco {SCRIPT}" in html.unescape(re.search(r"<title>(.*?)</title>", dom, re.S)[1])


def test_a_regression_target_named_like_math_is_drawn_as_text(ames_raw, ames_config):
    raw = quick(ames_config).model_dump(mode="json")
    name = f"Sale {MATH}"
    raw["target"]["name"] = name
    config = parse_config(raw)
    frame = ames_raw.rename(columns={"Sale_Price": name}).head(600)
    train, test = split_frame(process_frame(frame, config), config)
    featurizer = build_featurizer(config).fit(features_and_target(train, config)[0])
    model = fit_model(train, featurizer, expand_search_space(config)[0], config)
    page = evaluation_report(model, test, config, holdout_metrics(model, test, config), {})
    assert page.count("data:image/png;base64,") == 2
