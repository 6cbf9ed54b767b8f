"""Checking a raw table against its data-set config before anything is learned from it.

Hard rules (violations) fail the run with one message naming every column and rule broken; soft
findings (an unseen category, an extra column) are reported without failing. Each column is also
profiled (blanks, extent, levels, unseen values) for the report, which lifecycle.dataset.report writes.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from lifecycle.dataset.config import ColumnSpec, DatasetConfig
from lifecycle.dataset.expressions import column_names, evaluate
from lifecycle.dataset.report import (
    SHOWN_VALUES,
    ColumnProfile,
    DataValidationError,
    Finding,
    ValidationReport,
    markdown_text,
)

# The report's types live in lifecycle.dataset.report; callers import them from here too.
__all__ = ["DataValidationError", "Finding", "ValidationReport", "markdown_text", "validate_frame"]

SAMPLE_SIZE = 3  # offending values quoted per finding

# Holdout metrics that lifecycle.modelling.evaluation computes only for targets above zero; without one,
# registration fails on the missing promotion metric after all the training.
POSITIVE_TARGET_METRICS = {"test_rmsle"}


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


def _null_limit(name: str, spec: ColumnSpec, config: DatasetConfig) -> float | None:
    """The allowed fraction of blanks; None where a blank stands for a level (features.fill_values)."""
    if name in config.features.fill_values:
        return None
    return spec.max_null_fraction if spec.max_null_fraction is not None else config.validation.max_null_fraction


def _known_levels(name: str, spec: ColumnSpec, config: DatasetConfig) -> set[str] | None:
    """The levels a categorical column may hold without a finding; None when the config lists none."""
    if spec.categories is None:
        return None
    fill = config.features.fill_values
    return set(spec.categories) | ({str(fill[name])} if name in fill else set())


def _check_column(name, series, spec, config: DatasetConfig, report: ValidationReport) -> None:
    limit = _null_limit(name, spec, config)
    if limit is not None:
        report.checked(name, "nulls")
        null_fraction = float(series.isna().mean())
        if null_fraction > limit:
            report.violations.append(
                Finding(name, "nulls", f"{null_fraction:.1%} missing, more than the allowed {limit:.1%}")
            )
    if spec.type == "numeric":
        report.checked(name, "dtype")
        text = _non_numeric(series)
        if len(text):
            report.violations.append(
                Finding(name, "dtype", f"expected numbers, found text in {len(text)} row(s): {_sample(text)}")
            )
            return
        report.checked(name, "finite")
        values = _finite(name, pd.to_numeric(series, errors="coerce"), report.violations)
        if spec.min is not None or spec.max is not None:
            report.checked(name, "range")
        _check_range(name, values, spec.min, spec.max, report.violations)
    elif spec.categories is not None:
        report.checked(name, "categories")
        known = _known_levels(name, spec, config)
        present = series.dropna().astype(str)
        unseen = present[~present.isin(known)]
        if len(unseen):
            finding = Finding(name, "categories", f"{len(unseen)} value(s) outside the known levels: {_sample(unseen)}")
            (report.violations if spec.strict_categories else report.warnings).append(finding)


def _check_target(frame: pd.DataFrame, config: DatasetConfig, report: ValidationReport) -> None:
    target = config.target
    report.checked(target.name, "target")
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
        report.checked(target.name, "dtype")
        text = _non_numeric(present)
        if len(text):
            report.violations.append(
                Finding(target.name, "dtype", f"regression target must be numeric, found text: {_sample(text)}")
            )
            return
        report.checked(target.name, "finite")
        values = _finite(target.name, pd.to_numeric(present), report.violations)
        unchecked = target.min is None or target.min <= 0  # else the range check has named them
        if target.min is not None or target.max is not None or (unchecked and target.transform == "log"):
            report.checked(target.name, "range")
        _check_range(target.name, values, target.min, target.max, report.violations)
        if unchecked and target.transform == "log" and (values <= 0).any():
            report.violations.append(Finding(target.name, "range", "log transform needs target values above 0"))
        metric = config.registry.metric
        if unchecked and metric in POSITIVE_TARGET_METRICS:
            report.checked(target.name, "metric")
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
        report.checked(target.name, "classes")
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
        report.derived_checked.append(name)
        infinite = int(np.isinf(values).sum())
        if infinite and name not in config.features.drop:
            report.violations.append(
                Finding(name, "finite", f"derived feature {expression!r} is infinite in {infinite} row(s)")
            )
        else:  # a dropped feature never reaches the model, but a later expression may read it
            inputs[name] = values


def validate_frame(frame: pd.DataFrame, config: DatasetConfig, source: str) -> ValidationReport:
    report = ValidationReport(
        source=source,
        rows=len(frame),
        columns=frame.shape[1],
        min_rows=config.validation.min_rows,
        profiles=_profiles(frame, config),
    )
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
            report.checked(name, "required")
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
        report.duplicates = int(frame.duplicated().sum())
        report.max_duplicate_fraction = config.validation.max_duplicate_fraction
        duplicate_fraction = report.duplicates / len(frame)
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


# ---- what each column holds, for the report's column table ------------------------------------------


def _counted(values: pd.Series) -> tuple[list[tuple[object, int]], int]:
    """The most frequent of `values` with their counts, and how many distinct values there are.
    Ties stay in the order the values first appear, so a report reads the same on every run."""
    counts = values.value_counts(sort=False).sort_values(ascending=False, kind="stable")
    return [(value, int(count)) for value, count in counts.head(SHOWN_VALUES).items()], len(counts)


def _observe(name: str, series: pd.Series, kind: str) -> ColumnProfile:
    # Distinct as text: a column read from Parquet may hold values that cannot be hashed (lists).
    distinct = int(series.dropna().astype(str).nunique())
    return ColumnProfile(name=name, kind=kind, rows=len(series), nulls=int(series.isna().sum()), distinct=distinct)


def _observe_numbers(profile: ColumnProfile, present: pd.Series, allowed: tuple[float | None, float | None]) -> None:
    """The extent of the finite numbers, and the values that are text, infinite or out of range."""
    numbers = pd.to_numeric(present, errors="coerce").dropna().astype("float64")
    finite = numbers[np.isfinite(numbers)]
    low, high = allowed
    outside = pd.Series(False, index=finite.index)
    if low is not None:
        outside |= finite < low
    if high is not None:
        outside |= finite > high
    profile.allowed = allowed
    if len(finite):
        profile.observed = (float(finite.min()), float(finite.max()))
    # Text quoted, so that "1,000" reads as text and not as the number one thousand.
    invalid = [_non_numeric(present).astype(str).map(repr), numbers[np.isinf(numbers)], finite[outside]]
    profile.unexpected, profile.unexpected_distinct = _counted(pd.concat([p.astype(object) for p in invalid]))


def _observe_levels(profile: ColumnProfile, present: pd.Series, known: set[str] | None) -> None:
    """The most frequent levels, and those the config does not list."""
    levels = present.astype(str)
    profile.top, profile.distinct = _counted(levels)
    if known is not None:
        profile.levels_checked = True
        profile.unexpected, profile.unexpected_distinct = _counted(levels[~levels.isin(known)])


def _profile_column(name: str, series: pd.Series, spec: ColumnSpec, config: DatasetConfig) -> ColumnProfile:
    profile = _observe(name, series, spec.type)
    profile.null_limit = _null_limit(name, spec, config)
    profile.null_fill = config.features.fill_values.get(name)
    if spec.type == "numeric":
        _observe_numbers(profile, series.dropna(), (spec.min, spec.max))
    else:
        _observe_levels(profile, series.dropna(), _known_levels(name, spec, config))
    return profile


def _profile_target(series: pd.Series, config: DatasetConfig) -> ColumnProfile:
    target = config.target
    profile = _observe(target.name, series, "target")
    profile.null_limit = 0.0
    if config.task == "regression":
        _observe_numbers(profile, series.dropna(), (target.min, target.max))
    else:
        _observe_levels(profile, series.dropna(), set(target.classes))
    return profile


def _profile_unconfigured(name: str, series: pd.Series) -> ColumnProfile:
    profile = _observe(name, series, "not in config")
    if pd.api.types.is_numeric_dtype(series) and not pd.api.types.is_bool_dtype(series):
        _observe_numbers(profile, series.dropna(), (None, None))
    else:
        _observe_levels(profile, series.dropna(), None)
    return profile


def _profiles(frame: pd.DataFrame, config: DatasetConfig) -> dict[str, ColumnProfile]:
    """One profile per column, in the config's order, the target and then the columns it does not name."""
    profiles = {}
    for name, spec in config.columns.items():
        present = name in frame
        profiles[name] = (
            _profile_column(name, frame[name], spec, config)
            if present
            else ColumnProfile(name, spec.type, present=False)
        )
    target = config.target.name
    profiles[target] = (
        _profile_target(frame[target], config) if target in frame else ColumnProfile(target, "target", present=False)
    )
    for name in frame.columns:
        profiles.setdefault(str(name), _profile_unconfigured(str(name), frame[name]))
    return profiles
