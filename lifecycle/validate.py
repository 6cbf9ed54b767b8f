"""Checking a raw table against its data-set config before anything is learned from it.

Hard rules (violations) fail the run with one message naming every column and rule broken; soft
findings (an unseen category, an extra column) are reported without failing.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import pandas as pd

from lifecycle.config import DatasetConfig

SAMPLE_SIZE = 3  # offending values quoted per finding


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
            f"- source: `{self.source}`",
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
            lines += [f"| `{f.column}` | {f.rule} | {f.detail.replace('|', '/')} |" for f in findings]
            lines.append("")
        return "\n".join(lines)

    def raise_if_failed(self) -> None:
        if self.violations:
            listed = "\n".join(f"  - {finding}" for finding in self.violations)
            raise DataValidationError(
                f"{self.source} failed validation with {len(self.violations)} violation(s):\n{listed}"
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
        _check_range(name, pd.to_numeric(series, errors="coerce"), spec.min, spec.max, report.violations)
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
        _check_range(target.name, pd.to_numeric(present), target.min, target.max, report.violations)
        needs_positive = target.transform == "log" and (target.min is None or target.min <= 0)
        if needs_positive and (pd.to_numeric(present) <= 0).any():
            report.violations.append(Finding(target.name, "range", "log transform needs target values above 0"))
    else:
        labels = present.astype(str)
        unknown = labels[~labels.isin(target.classes)]
        if len(unknown):
            report.violations.append(
                Finding(target.name, "classes", f"{len(unknown)} label(s) not in {target.classes}: {_sample(unknown)}")
            )
        if labels.nunique() < 2:
            report.violations.append(Finding(target.name, "classes", "fewer than two classes present"))


def validate_frame(frame: pd.DataFrame, config: DatasetConfig, source: str) -> ValidationReport:
    report = ValidationReport(source=source, rows=len(frame), columns=frame.shape[1])
    if len(frame) < config.validation.min_rows:
        report.violations.append(
            Finding("(table)", "min_rows", f"{len(frame)} rows, fewer than the required {config.validation.min_rows}")
        )
    for name, spec in config.columns.items():
        if name not in frame:
            if spec.required:
                report.violations.append(Finding(name, "required", "required column is missing"))
            continue
        report.checked_columns += 1
        _check_column(name, frame[name], spec, config, report)
    _check_target(frame, config, report)
    expected = set(config.columns) | {config.target.name}
    for name in frame.columns:
        if name not in expected:
            report.warnings.append(Finding(str(name), "unexpected", "column not in the config; it is ignored"))
    if len(frame):
        duplicate_fraction = float(frame.duplicated().mean())
        if duplicate_fraction > config.validation.max_duplicate_fraction:
            report.violations.append(
                Finding("(table)", "duplicates", f"{duplicate_fraction:.1%} duplicate rows, more than the allowed "
                        f"{config.validation.max_duplicate_fraction:.1%}")
            )
    return report
