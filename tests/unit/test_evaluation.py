import numpy as np
import pandas as pd

from lifecycle.estimators import expand_search_space
from lifecycle.evaluation import evaluation_report, holdout_metrics, regression_metrics, roc_points
from lifecycle.features import build_featurizer, features_and_target
from lifecycle.process import process_frame, split_frame
from lifecycle.training import fit_model
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
