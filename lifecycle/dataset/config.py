"""The data-set configuration: everything that differs between data sets, as data.

A new CSV with a new target needs a new YAML file of this shape, never a code change. Unknown keys
and missing required fields are errors that name the field, so a typo cannot silently switch a
rule off.
"""

from __future__ import annotations

import contextlib
import json
import math
from numbers import Real
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from lifecycle.dataset.expressions import ExpressionError, column_names

Task = Literal["regression", "classification"]

# Holdout metrics a config may promote on, and which way is better.
METRIC_DIRECTIONS = {
    "test_rmse": "min",
    "test_mae": "min",
    "test_rmsle": "min",
    "test_r2": "max",
    "test_roc_auc": "max",
    "test_accuracy": "max",
    "test_f1": "max",
    "test_log_loss": "min",
}


class ConfigError(ValueError):
    """A data-set config that is not well formed."""


def check_margin(value: Any, where: str) -> float:
    """`value` as a promotion margin: a finite number, at least 0. Raises ConfigError naming `where`.

    The margin is how much better than the champion a challenger must be: a negative one promotes a
    worse model, NaN makes every comparison false and infinity promotes nothing. It enters as a
    config field, a pipeline parameter and a command-line flag; each calls this. Text is read as a
    number (a flag's value); a boolean is not a number here.
    """
    number = None
    if isinstance(value, str):
        with contextlib.suppress(ValueError):
            number = float(value)
    elif isinstance(value, Real) and not isinstance(value, bool):
        number = float(value)
    if number is None or not math.isfinite(number) or number < 0:
        raise ConfigError(
            f"{where} must be a finite number at least 0 (how much better than the champion a challenger "
            f"must be), not {value!r}"
        )
    return number + 0.0  # -0.0 as 0.0


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ColumnSpec(_Strict):
    """One input column: its kind and the values it may hold."""

    type: Literal["numeric", "categorical"]
    required: bool = True
    min: float | None = None
    max: float | None = None
    max_null_fraction: float | None = Field(default=None, ge=0, le=1)
    # Known levels. A value outside them is a soft finding unless `strict_categories` is set.
    categories: list[str] | None = None
    strict_categories: bool = False


class TargetSpec(_Strict):
    name: str
    # Classification: the labels, the positive one last (it is the one ROC-AUC scores).
    classes: list[str] | None = None
    min: float | None = None
    max: float | None = None
    # Regression on log(target): errors on prices are relative, and RMSLE is the metric.
    transform: Literal["none", "log"] = "none"


class ValidationRules(_Strict):
    min_rows: int = Field(default=100, ge=1)
    max_null_fraction: float = Field(default=0.5, ge=0, le=1)
    max_duplicate_fraction: float = Field(default=0.05, ge=0, le=1)


class Processing(_Strict):
    drop_duplicates: bool = True
    # Clip numeric columns to [low, high] after validation: limits the pull of extreme values.
    clip: dict[str, tuple[float | None, float | None]] = {}


class Features(_Strict):
    # Blanks that stand for a level, not a missing measurement (an empty veneer type = "None").
    # Filled by the model's first step, so raw rows sent to a server get the same treatment.
    fill_values: dict[str, str | float] = {}
    # New columns as arithmetic over the input columns (lifecycle.dataset.expressions), in order.
    derived: dict[str, str] = {}
    drop: list[str] = []
    # One-hot levels rarer than this are pooled into one "infrequent" column.
    one_hot_min_frequency: int = Field(default=1, ge=1)
    scale_numeric: bool = True


class Candidate(_Strict):
    """A family of estimators: every combination of `params` values is one candidate."""

    estimator: str
    params: dict[str, list[Any]] = {}


class Training(_Strict):
    cv_folds: int = Field(default=5, ge=2)
    search_space: list[Candidate] = Field(min_length=1)


class Split(_Strict):
    test_size: float = Field(default=0.2, gt=0, lt=1)
    seed: int = 42


class Registry(_Strict):
    model_name: str
    metric: str
    # The challenger must beat the champion by this much on `metric` to be promoted.
    margin: float = 0.0
    # auto: a better version takes `champion` at once; manual: it waits as `challenger` for a person.
    promotion: Literal["auto", "manual"] = "auto"

    @field_validator("margin", mode="before")
    @classmethod
    def _sane_margin(cls, value: Any) -> float:
        return check_margin(value, "registry.margin")

    @model_validator(mode="after")
    def _known_metric(self) -> Registry:
        if self.metric not in METRIC_DIRECTIONS:
            raise ValueError(f"registry.metric {self.metric!r} is not one of {sorted(METRIC_DIRECTIONS)}")
        return self


def _no_bool(value: Any, info) -> Any:
    # pydantic reads `true` as 1.0 for a float: a threshold written as a flag is a mistake, not 1.
    if isinstance(value, bool):
        raise ValueError(f"must be a number, not {value!r}")
    return value


def _share() -> Any:
    return Field(default=None, ge=0, le=1, allow_inf_nan=False)


class ColumnThresholds(_Strict):
    """One column's own drift thresholds; a field left out takes the `monitoring` section's value."""

    psi: float | None = Field(default=None, ge=0, allow_inf_nan=False)
    null_increase: float | None = _share()
    unseen_fraction: float | None = _share()
    out_of_range_fraction: float | None = _share()

    _numbers = field_validator("*", mode="before")(_no_bool)


class Monitoring(_Strict):
    """When scored rows count as drifted from the training split (lifecycle.monitoring).

    A statistic flags its column when it is strictly above its threshold, so a fraction threshold
    of 1 switches that check off.
    """

    # 0.1-0.2 is the customary "moderate", above 0.2 the "significant" population shift.
    psi: float = Field(default=0.2, ge=0, allow_inf_nan=False)
    # Rise of a column's blank share over training, in share of rows (0.1 = ten percentage points).
    null_increase: float = Field(default=0.1, ge=0, le=1, allow_inf_nan=False)
    # Share of rows holding a category the training split never had (categorical columns).
    unseen_fraction: float = Field(default=0.01, ge=0, le=1, allow_inf_nan=False)
    # Share of rows below the training minimum or above the training maximum (numeric columns).
    out_of_range_fraction: float = Field(default=0.01, ge=0, le=1, allow_inf_nan=False)
    prediction_psi: float = Field(default=0.2, ge=0, allow_inf_nan=False)
    # This many drifted columns (or drifted predictions) make the verdict "drifted".
    min_drifted_columns: int = Field(default=1, ge=1)
    columns: dict[str, ColumnThresholds] = {}

    _numbers = field_validator("*", mode="before")(_no_bool)

    def thresholds(self, column: str) -> dict[str, float]:
        """The thresholds that apply to `column`: its own where set, the section's otherwise."""
        own = self.columns.get(column)
        fields = ("psi", "null_increase", "unseen_fraction", "out_of_range_fraction")
        return {
            name: getattr(own, name) if own is not None and getattr(own, name) is not None else getattr(self, name)
            for name in fields
        }


class DatasetConfig(_Strict):
    name: str
    description: str = ""
    data_uri: str
    task: Task
    target: TargetSpec
    columns: dict[str, ColumnSpec] = Field(min_length=1)
    validation: ValidationRules = ValidationRules()
    processing: Processing = Processing()
    features: Features = Features()
    split: Split = Split()
    training: Training
    registry: Registry
    monitoring: Monitoring = Monitoring()

    @model_validator(mode="after")
    def _consistent(self) -> DatasetConfig:
        problems = []
        if self.target.name in self.columns:
            problems.append(f"target {self.target.name!r} is also listed under columns")
        if self.task == "classification":
            # Evaluation and the CV scorers are binary (ROC-AUC, F1 and log loss of classes[-1]).
            classes = self.target.classes or []
            if len(classes) != 2 or classes[0] == classes[1]:
                problems.append(
                    f"target.classes must list exactly two distinct labels, the positive one last, not {classes}"
                )
            if self.target.transform != "none":
                problems.append("target.transform applies to regression only")
        for path, low, high in (
            *((f"columns.{name}", spec.min, spec.max) for name, spec in self.columns.items()),
            ("target", self.target.min, self.target.max),
        ):
            if low is not None and high is not None and low > high:
                problems.append(f"{path}: min {low:g} is above max {high:g}")
        for name, (low, high) in self.processing.clip.items():
            if low is not None and high is not None and low > high:
                problems.append(f"processing.clip.{name}: low {low:g} is above high {high:g}")
        named = set(self.columns) | set(self.features.derived)
        known = set(self.columns)
        categorical = {name for name, spec in self.columns.items() if spec.type == "categorical"}
        for name, expression in self.features.derived.items():
            try:
                read = column_names(expression)
            except ExpressionError as exc:
                problems.append(f"features.derived.{name}: {exc}")
            else:
                unknown = sorted(read - known)
                if unknown:
                    problems.append(f"features.derived.{name} reads unknown column(s) {', '.join(map(repr, unknown))}")
                # Expressions are arithmetic on float arrays: a text column cannot be converted.
                text = sorted(read & categorical)
                if text:
                    problems.append(
                        f"features.derived.{name} ({expression!r}) reads categorical column(s) "
                        f"{', '.join(map(repr, text))}"
                    )
            known.add(name)
        for section, names in (
            ("features.fill_values", self.features.fill_values),
            ("processing.clip", self.processing.clip),
            ("features.drop", self.features.drop),
        ):
            for name in names:
                if name not in named:
                    problems.append(f"{section} names unknown column {name!r}")
        for name in self.processing.clip:
            if name in self.columns and self.columns[name].type != "numeric":
                problems.append(f"processing.clip names non-numeric column {name!r}")
        # Drift is measured on the model's input columns (lifecycle.monitoring.profile).
        inputs = {name: self.columns[name].type for name in self.feature_columns}
        for name, own in self.monitoring.columns.items():
            if name not in inputs:
                problems.append(f"monitoring.columns names {name!r}, which is not a model input column")
            elif inputs[name] == "numeric" and own.unseen_fraction is not None:
                problems.append(f"monitoring.columns.{name}.unseen_fraction applies to categorical columns only")
            elif inputs[name] == "categorical" and own.out_of_range_fraction is not None:
                problems.append(f"monitoring.columns.{name}.out_of_range_fraction applies to numeric columns only")
        wrong_task = {
            "regression": {"test_roc_auc", "test_accuracy", "test_f1", "test_log_loss"},
            "classification": {"test_rmse", "test_mae", "test_rmsle", "test_r2"},
        }[self.task]
        if self.registry.metric in wrong_task:
            problems.append(f"registry.metric {self.registry.metric!r} does not fit task {self.task!r}")
        if problems:
            raise ValueError("; ".join(problems))
        return self

    @property
    def feature_columns(self) -> list[str]:
        return [name for name in self.columns if name not in self.features.drop]

    @property
    def numeric_columns(self) -> list[str]:
        return [n for n in self.feature_columns if self.columns[n].type == "numeric"]

    @property
    def categorical_columns(self) -> list[str]:
        return [n for n in self.feature_columns if self.columns[n].type == "categorical"]


def parse_config(raw: dict[str, Any] | str, source: str = "config") -> DatasetConfig:
    """Validates a config mapping (or its JSON text); the error names every offending field."""
    if isinstance(raw, str):
        try:
            raw = json.loads(raw)
        except json.JSONDecodeError as exc:
            raise ConfigError(f"{source} is not valid JSON: {exc}") from None
    if not isinstance(raw, dict):
        raise ConfigError(f"{source} must be a mapping of config fields, not {type(raw).__name__}")
    try:
        return DatasetConfig.model_validate(raw)
    except ValidationError as exc:
        lines = []
        for err in exc.errors():
            field = ".".join(str(part) for part in err["loc"]) or "(top level)"
            message = "unknown field" if err["type"] == "extra_forbidden" else err["msg"].removeprefix("Value error, ")
            lines.append(f"  {field}: {message}")
        raise ConfigError(f"{source} is not a valid data-set config:\n" + "\n".join(lines)) from None


def load_config(path: str | Path) -> DatasetConfig:
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"config file not found: {path}")
    try:
        raw = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path} is not valid YAML: {exc}") from None
    return parse_config(raw, source=str(path))


def config_as_json(config: DatasetConfig) -> str:
    """The form passed to pipeline steps: JSON text, because a KFP dict parameter is a protobuf
    Struct, which turns every int into a float (max_iter=600 would arrive as 600.0)."""
    return json.dumps(config.model_dump(mode="json"), sort_keys=True)
