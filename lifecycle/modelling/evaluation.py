"""Holdout metrics and the evaluation report (HTML with embedded plots)."""

from __future__ import annotations

import base64
import html
import io
from typing import Any

import numpy as np
import pandas as pd
from sklearn import metrics as skm

from lifecycle.dataset.config import DatasetConfig
from lifecycle.modelling.features import features_and_target

ROC_POINTS = 101  # the ROC curve handed to the KFP UI, resampled to a readable size


def plot_text(value) -> str:
    """A name from the data or config as plot text: matplotlib reads text between two $ as math,
    and a column named "$\\x$" would fail the whole report at drawing time."""
    return str(value).replace("$", r"\$")


def regression_metrics(y_true: np.ndarray, y_pred: np.ndarray) -> dict[str, float]:
    out = {
        "test_rmse": float(skm.root_mean_squared_error(y_true, y_pred)),
        "test_mae": float(skm.mean_absolute_error(y_true, y_pred)),
        "test_r2": float(skm.r2_score(y_true, y_pred)),
    }
    if (y_true > 0).all():
        # A negative prediction of a positive target counts as zero, as a price floor would.
        out["test_rmsle"] = float(skm.root_mean_squared_log_error(y_true, np.clip(y_pred, 0, None)))
    return out


def classification_metrics(
    y_true: pd.Series, labels: np.ndarray, proba: np.ndarray, classes: list[str]
) -> dict[str, float]:
    positive = classes[-1]
    return {
        "test_roc_auc": float(skm.roc_auc_score(y_true == positive, proba)),
        "test_accuracy": float(skm.accuracy_score(y_true, labels)),
        "test_f1": float(skm.f1_score(y_true, labels, pos_label=positive)),
        "test_log_loss": float(skm.log_loss(y_true == positive, proba, labels=[False, True])),
    }


def positive_proba(model, X: pd.DataFrame, positive: str) -> np.ndarray:
    column = list(model.classes_).index(positive)
    return model.predict_proba(X)[:, column]


def holdout_metrics(model, test: pd.DataFrame, config: DatasetConfig) -> dict[str, float]:
    X, y = features_and_target(test, config)
    if config.task == "regression":
        return regression_metrics(y.to_numpy(dtype=float), np.asarray(model.predict(X), dtype=float))
    positive = config.target.classes[-1]
    return classification_metrics(
        y.astype(str), model.predict(X), positive_proba(model, X, positive), config.target.classes
    )


def roc_points(y_true: pd.Series, proba: np.ndarray, positive: str) -> dict[str, list[float]]:
    fpr, tpr, thresholds = skm.roc_curve(y_true == positive, proba)
    grid = np.linspace(0, 1, ROC_POINTS)
    thresholds = np.clip(thresholds, 0, 1)  # the first threshold is +inf
    return {
        "fpr": grid.tolist(),
        "tpr": np.interp(grid, fpr, tpr).tolist(),
        "threshold": np.interp(grid, fpr, thresholds).tolist(),
    }


def confusion(y_true: pd.Series, labels: np.ndarray, classes: list[str]) -> list[list[int]]:
    return skm.confusion_matrix(y_true, labels, labels=classes).tolist()


def feature_importance(model, test: pd.DataFrame, config: DatasetConfig, top: int = 15) -> pd.Series:
    """Permutation importance of the raw input columns on the holdout (model-agnostic)."""
    from sklearn.inspection import permutation_importance

    from lifecycle.modelling.training import cv_scorer

    X, y = features_and_target(test, config)
    result = permutation_importance(model, X, y, scoring=cv_scorer(config), n_repeats=3, random_state=config.split.seed)
    return pd.Series(result.importances_mean, index=X.columns).sort_values(ascending=False).head(top)


# The metrics and the run side by side above the plots; numbers right-aligned so their digits line up.
REPORT_STYLE = """
body { font-family: "Helvetica Neue", "DejaVu Sans", Arial, sans-serif; color: #202124; margin: 20px 24px; }
h1 { font-size: 24px; font-weight: 500; margin: 0 0 4px; }
h2 { font-size: 17px; font-weight: 500; margin: 18px 0 8px; }
.tables { display: flex; gap: 48px; align-items: flex-start; }
table { border-collapse: collapse; font-size: 14px; }
th, td { border: 1px solid #dadce0; padding: 4px 12px; text-align: left; }
th { background: #f1f3f4; font-weight: 500; }
td.number { text-align: right; font-variant-numeric: tabular-nums; }
img { display: block; max-width: 100%; margin: 0 0 16px; }
"""


def _figure_html(fig) -> str:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=90, bbox_inches="tight")
    encoded = base64.b64encode(buffer.getvalue()).decode()
    return f'<img alt="" src="data:image/png;base64,{encoded}"/>'


def evaluation_report(
    model, test: pd.DataFrame, config: DatasetConfig, metrics: dict[str, float], context: dict[str, Any]
) -> str:
    """A self-contained HTML page (plots inlined) for the KFP UI's HTML viewer."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    X, y = features_and_target(test, config)
    figures = []
    if config.task == "regression":
        predicted = np.asarray(model.predict(X), dtype=float)
        actual = y.to_numpy(dtype=float)
        fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4.5))
        left.scatter(actual, predicted, s=8, alpha=0.5)
        limits = [min(actual.min(), predicted.min()), max(actual.max(), predicted.max())]
        left.plot(limits, limits, color="grey", linewidth=1)
        left.set(xlabel=f"actual {plot_text(config.target.name)}", ylabel="predicted", title="Predicted vs actual")
        right.scatter(predicted, actual - predicted, s=8, alpha=0.5)
        right.axhline(0, color="grey", linewidth=1)
        right.set(xlabel="predicted", ylabel="actual - predicted", title="Residuals")
        figures.append(fig)
    else:
        positive = config.target.classes[-1]
        proba = positive_proba(model, X, positive)
        fpr, tpr, _ = skm.roc_curve(y == positive, proba)
        from sklearn.calibration import calibration_curve

        observed, expected = calibration_curve(y == positive, proba, n_bins=10)
        fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4.5))
        left.plot(fpr, tpr)
        left.plot([0, 1], [0, 1], color="grey", linewidth=1)
        left.set(
            xlabel="false positive rate", ylabel="true positive rate", title=f"ROC (AUC {metrics['test_roc_auc']:.3f})"
        )
        right.plot(expected, observed, marker="o")
        right.plot([0, 1], [0, 1], color="grey", linewidth=1)
        right.set(xlabel="mean predicted probability", ylabel=f"fraction {plot_text(positive)}", title="Calibration")
        figures.append(fig)
    importance = feature_importance(model, test, config)
    fig, axis = plt.subplots(figsize=(8, 0.35 * len(importance) + 1))
    # Positions, not names, on the axis: two names that differ only in a $ would share a bar.
    axis.barh(range(len(importance)), importance.values[::-1])
    axis.set_yticks(range(len(importance)), [plot_text(name) for name in importance.index[::-1]])
    axis.set(
        xlabel=f"drop in {config.registry.metric.replace('test_', '')} when shuffled",
        title="Permutation importance (holdout)",
    )
    figures.append(fig)
    images = "\n".join(_figure_html(f) for f in figures)
    plt.close("all")
    # Every value from the data, the config or the run is escaped, quotes included.
    metric_rows = "".join(
        f'<tr><td>{html.escape(k)}</td><td class="number">{float(v):.4f}</td></tr>' for k, v in sorted(metrics.items())
    )
    context_rows = "".join(
        f"<tr><td>{html.escape(str(k))}</td><td>{html.escape(str(v))}</td></tr>" for k, v in context.items()
    )
    return f"""<!doctype html>
<html><head><meta charset="utf-8"><title>Evaluation: {html.escape(config.name)}</title>
<style>{REPORT_STYLE}</style>
</head><body>
<h1>Evaluation: {html.escape(config.name)} ({html.escape(config.task)})</h1>
<div class="tables">
<section><h2>Holdout metrics ({len(test)} rows)</h2>
<table><tr><th>metric</th><th>value</th></tr>{metric_rows}</table></section>
<section><h2>Run</h2><table>{context_rows}</table></section>
</div>
<h2>Plots</h2>
{images}
</body></html>
"""
