from typing import NamedTuple

from kfp.dsl import HTML, ClassificationMetrics, Dataset, Input, Metrics, Model, Output

from components import project_component


@project_component
def evaluate_model(
    model: Input[Model],
    test: Input[Dataset],
    config: str,
    metrics: Output[Metrics],
    classification_metrics: Output[ClassificationMetrics],
    report: Output[HTML],
) -> NamedTuple("Evaluation", [("holdout_metrics", dict)]):
    """Scores the model on the holdout and writes metrics and an HTML report with plots.

    Args:
        model: The fitted pipeline.
        test: The holdout split.
        config: The data-set config (task, target, classes).
        metrics: Holdout metrics (test_rmse, test_mae, test_r2, test_rmsle or test_roc_auc,
            test_accuracy, test_f1, test_log_loss).
        classification_metrics: ROC curve and confusion matrix (classification only).
        report: Plots (predicted vs actual and residuals, or ROC and calibration) and
            permutation feature importance.

    Returns:
        holdout_metrics: The same metrics as a dict, for the register step.
    """
    from collections import namedtuple

    import pandas as pd

    from lifecycle.dataset.config import parse_config
    from lifecycle.modelling.evaluation import (
        confusion,
        evaluation_report,
        holdout_metrics,
        positive_proba,
        roc_points,
    )
    from lifecycle.modelling.features import features_and_target
    from lifecycle.modelling.serialization import load_artifact_model

    cfg = parse_config(config)
    fitted = load_artifact_model(model.path, model.metadata)
    holdout = pd.read_parquet(test.path)
    values = holdout_metrics(fitted, holdout, cfg)
    for name, value in values.items():
        metrics.log_metric(name, value)
    if cfg.task == "classification":
        X, y = features_and_target(holdout, cfg)
        positive = cfg.target.classes[-1]
        curve = roc_points(y.astype(str), positive_proba(fitted, X, positive), positive)
        classification_metrics.log_roc_curve(curve["fpr"], curve["tpr"], curve["threshold"])
        classification_metrics.log_confusion_matrix(
            cfg.target.classes, confusion(y.astype(str), fitted.predict(X), cfg.target.classes)
        )
    context = {"model": model.metadata.get("candidate", ""), "holdout rows": len(holdout)}
    with open(report.path, "w") as handle:
        handle.write(evaluation_report(fitted, holdout, cfg, values, context))
    return namedtuple("Evaluation", ["holdout_metrics"])(values)
