"""Checking a raw table against its data-set config before anything is learned from it.

Hard rules (violations) fail the run with one message naming every column and rule broken; soft
findings (an unseen category, an extra column) are reported without failing.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from lifecycle.dataset.config import DatasetConfig
from lifecycle.dataset.expressions import column_names, evaluate
from lifecycle.urls import mask_credentials

SAMPLE_SIZE = 3  # offending values quoted per finding

# Holdout metrics that lifecycle.modelling.evaluation computes only for targets above zero; without one,
# registration fails on the missing promotion metric after all the training.
POSITIVE_TARGET_METRICS = {"test_rmsle"}


# How the report writes a character that Markdown or HTML would read as syntax. Entities for HTML
# (the KFP UI's renderer may pass raw HTML through), backslashes for Markdown (the renderer
# honours them, `\|` inside a table cell included). Column names, values, categories and config
# text all come from outside: none of it may open a tag, a link, emphasis, code or a table cell
# (a value never starts a line, so heading and list markers need nothing).
_MARKDOWN_ESCAPES = {"&": "&amp;", "<": "&lt;", ">": "&gt;"} | {c: "\\" + c for c in "\\`*_~[]|"}


def markdown_text(value) -> str:
    """`value` as text that renders as itself in a Markdown table cell or line.

    A line break would end the table row, so control characters (and Unicode line separators)
    are shown as their Python escapes: a column named "a<newline>b" reads a\\nb.
    """
    out = []
    for char in str(value):
        if not char.isprintable():
            char = char.encode("unicode_escape").decode("ascii")
        out.extend(_MARKDOWN_ESCAPES.get(c, c) for c in char)
    return "".join(out)


class DataValidationError(ValueError):
    """The data breaks one or more rules of its config."""


@dataclass(frozen=True)
class Finding:
    column: str
    rule: str
    detail: str

    def __str__(self) -> str:
        return f"{self.column}: {self.rule}: {self.detail}"


@dataclass
class ValidationReport:
    source: str
    rows: int
    columns: int
    violations: list[Finding] = field(default_factory=list)
    warnings: list[Finding] = field(default_factory=list)
    checked_columns: int = 0

    @property
    def passed(self) -> bool:
        return not self.violations

    def to_markdown(self) -> str:
        status = "PASSED" if self.passed else "FAILED"
        lines = [
            f"# Data validation: {status}",
            "",
            f"- source: {markdown_text(mask_credentials(self.source))}",
            f"- rows: {self.rows}, columns: {self.columns}, columns checked: {self.checked_columns}",
            f"- violations: {len(self.violations)}, warnings: {len(self.warnings)}",
            "",
        ]
        for title, findings in (("Violations", self.violations), ("Warnings", self.warnings)):
            lines += [f"## {title}", ""]
            if not findings:
                lines += ["None.", ""]
                continue
            lines += ["| column | rule | detail |", "| --- | --- | --- |"]
            lines += [
                f"| {markdown_text(f.column)} | {markdown_text(f.rule)} | {markdown_text(f.detail)} |" for f in findings
            ]
            lines.append("")
        return "\n".join(lines)

    def raise_if_failed(self) -> None:
        if self.violations:
            listed = "\n".join(f"  - {finding}" for finding in self.violations)
            raise DataValidationError(
                f"{mask_credentials(self.source)} failed validation with {len(self.violations)} violation(s):\n{listed}"
            )


def _sample(values: pd.Series) -> str:
    shown = [repr(v) for v in pd.unique(values)[:SAMPLE_SIZE].tolist()]
    return ", ".join(shown)


def _non_numeric(series: pd.Series) -> pd.Series:
    """The non-missing values of `series` that are not numbers."""
    if pd.api.types.is_numeric_dtype(series) and not pd.api.types.is_bool_dtype(series):
        return series.iloc[0:0]
    present = series.dropna()
    coerced = pd.to_numeric(present, errors="coerce")
    return present[coerced.isna()]


def _check_range(name: str, values: pd.Series, low, high, out: list[Finding]) -> None:
    if low is not None:
        below = values[values < low]
        if len(below):
            out.append(Finding(name, "range", f"{len(below)} value(s) below minimum {low:g}: {_sample(below)}"))
    if high is not None:
        above = values[values > high]
        if len(above):
            out.append(Finding(name, "range", f"{len(above)} value(s) above maximum {high:g}: {_sample(above)}"))


def _finite(name: str, values: pd.Series, out: list[Finding]) -> pd.Series:
    """The values that are not infinite; infinities are a violation (scaling and fitting refuse them)."""
    infinite = values.isin([np.inf, -np.inf])
    if infinite.any():
        out.append(Finding(name, "finite", f"{int(infinite.sum())} infinite value(s): {_sample(values[infinite])}"))
    return values[~infinite]


def _check_column(name, series, spec, config: DatasetConfig, report: ValidationReport) -> None:
    fill = config.features.fill_values
    limit = spec.max_null_fraction if spec.max_null_fraction is not None else config.validation.max_null_fraction
    if name not in fill:
        null_fraction = float(series.isna().mean())
        if null_fraction > limit:
            report.violations.append(
                Finding(name, "nulls", f"{null_fraction:.1%} missing, more than the allowed {limit:.1%}")
            )
    if spec.type == "numeric":
        text = _non_numeric(series)
        if len(text):
            report.violations.append(
                Finding(name, "dtype", f"expected numbers, found text in {len(text)} row(s): {_sample(text)}")
            )
            return
        values = _finite(name, pd.to_numeric(series, errors="coerce"), report.violations)
        _check_range(name, values, spec.min, spec.max, report.violations)
    elif spec.categories is not None:
        known = set(spec.categories) | ({str(fill[name])} if name in fill else set())
        present = series.dropna().astype(str)
        unseen = present[~present.isin(known)]
        if len(unseen):
            finding = Finding(name, "categories", f"{len(unseen)} value(s) outside the known levels: {_sample(unseen)}")
            (report.violations if spec.strict_categories else report.warnings).append(finding)


def _check_target(frame: pd.DataFrame, config: DatasetConfig, report: ValidationReport) -> None:
    target = config.target
    if target.name not in frame:
        report.violations.append(Finding(target.name, "target", "target column is missing"))
        return
    series = frame[target.name]
    missing = int(series.isna().sum())
    if missing == len(series):
        report.violations.append(Finding(target.name, "target", "target is empty in every row"))
        return
    if missing:
        report.violations.append(Finding(target.name, "target", f"{missing} row(s) have no target value"))
    present = series.dropna()
    if config.task == "regression":
        text = _non_numeric(present)
        if len(text):
            report.violations.append(
                Finding(target.name, "dtype", f"regression target must be numeric, found text: {_sample(text)}")
            )
            return
        values = _finite(target.name, pd.to_numeric(present), report.violations)
        _check_range(target.name, values, target.min, target.max, report.violations)
        unchecked = target.min is None or target.min <= 0  # else the range check has named them
        if unchecked and target.transform == "log" and (values <= 0).any():
            report.violations.append(Finding(target.name, "range", "log transform needs target values above 0"))
        metric = config.registry.metric
        if unchecked and metric in POSITIVE_TARGET_METRICS and (values <= 0).any():
            report.violations.append(
                Finding(
                    target.name,
                    "metric",
                    f"registry.metric {metric} needs target values above 0; "
                    f"{int((values <= 0).sum())} value(s) are not: {_sample(values[values <= 0])}",
                )
            )
    else:
        labels = present.astype(str)
        unknown = labels[~labels.isin(target.classes)]
        if len(unknown):
            report.violations.append(
                Finding(target.name, "classes", f"{len(unknown)} label(s) not in {target.classes}: {_sample(unknown)}")
            )
        if labels.nunique() < 2:
            report.violations.append(Finding(target.name, "classes", "fewer than two classes present"))
        else:
            _check_class_sizes(frame, config, report)


def _check_class_sizes(frame: pd.DataFrame, config: DatasetConfig, report: ValidationReport) -> None:
    """Each class needs a row in the stratified holdout and one per cross-validation fold of the
    training split; with fewer the split fails, or a fold without the class scores NaN."""
    target = config.target.name
    rows = frame.loc[:, [n for n in config.columns if n in frame] + [target]].dropna(subset=[target])
    if config.processing.drop_duplicates:
        rows = rows.drop_duplicates()  # as process does, before the split
    n = len(rows)
    n_test = math.ceil(config.split.test_size * n)  # as sklearn's train_test_split counts
    n_train = n - n_test
    if n_train < 1:
        return
    folds = config.training.cv_folds
    # The split gives a class of m rows at least floor(m * n_train / n) training rows and
    # floor(m * n_test / n) holdout rows.
    needed = max(-(-folds * n // n_train), -(-n // n_test))
    counts = rows[target].astype(str).value_counts()
    for label in config.target.classes:
        count = int(counts.get(label, 0))
        if count < needed:
            report.violations.append(
                Finding(
                    target,
                    "classes",
                    f"class {label!r} has {count} row(s); a {config.split.test_size * 100:g}% "
                    f"stratified holdout and {folds}-fold cross-validation over {n} rows need at least {needed}",
                )
            )


def _check_derived(frame: pd.DataFrame, config: DatasetConfig, report: ValidationReport) -> None:
    """Derived features are computed inside the model, after validation: an expression that
    divides by zero would reach the scaler as infinity. Computed as process and the model's
    first step would: numbers clipped, level-meaning blanks filled."""
    failed = {f.column for f in report.violations}
    inputs = pd.DataFrame(index=frame.index)
    for name, spec in config.columns.items():
        if spec.type == "numeric" and name in frame and name not in failed:
            values = pd.to_numeric(frame[name], errors="coerce").astype("float64")
            if name in config.processing.clip:
                values = values.clip(*config.processing.clip[name])
            if name in config.features.fill_values:
                values = values.fillna(config.features.fill_values[name])
            inputs[name] = values
    for name, expression in config.features.derived.items():
        if not all(column in inputs for column in column_names(expression)):
            continue  # an input is missing or already reported
        with np.errstate(all="ignore"):
            values = pd.Series(evaluate(expression, inputs), index=inputs.index)
        infinite = int(np.isinf(values).sum())
        if infinite and name not in config.features.drop:
            report.violations.append(
                Finding(name, "finite", f"derived feature {expression!r} is infinite in {infinite} row(s)")
            )
        else:  # a dropped feature never reaches the model, but a later expression may read it
            inputs[name] = values


def validate_frame(frame: pd.DataFrame, config: DatasetConfig, source: str) -> ValidationReport:
    report = ValidationReport(source=source, rows=len(frame), columns=frame.shape[1])
    if len(frame) < config.validation.min_rows:
        report.violations.append(
            Finding("(table)", "min_rows", f"{len(frame)} rows, fewer than the required {config.validation.min_rows}")
        )
    for name, spec in config.columns.items():
        if name not in frame:
            # The featurizer is built for every configured column: an optional one may be blank, not absent.
            problem = (
                "required column is missing"
                if spec.required
                else "column is missing (required: false allows blanks, not an absent column)"
            )
            report.violations.append(Finding(name, "required", problem))
            continue
        report.checked_columns += 1
        _check_column(name, frame[name], spec, config, report)
    _check_target(frame, config, report)
    _check_derived(frame, config, report)
    expected = set(config.columns) | {config.target.name}
    for name in frame.columns:
        if name not in expected:
            report.warnings.append(Finding(str(name), "unexpected", "column not in the config; it is ignored"))
    if len(frame):
        duplicate_fraction = float(frame.duplicated().mean())
        if duplicate_fraction > config.validation.max_duplicate_fraction:
            report.violations.append(
                Finding(
                    "(table)",
                    "duplicates",
                    f"{duplicate_fraction:.1%} duplicate rows, more than the allowed "
                    f"{config.validation.max_duplicate_fraction:.1%}",
                )
            )
    return report
