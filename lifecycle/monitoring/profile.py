"""The reference profile: how the training split's inputs and the model's predictions are distributed.

It is stored beside a registered model and read back when scored rows are checked for drift
(lifecycle.monitoring.drift), so it is small JSON: binned shares, never rows. Read back, it comes
from outside (a registry anyone with write access can change), so `load_profile` checks every field.
"""

from __future__ import annotations

import json
import math
from typing import Annotated, Any, Literal

import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from lifecycle.dataset.config import DatasetConfig

FORMAT = 1  # bumped when the shape changes; a reader refuses a format it does not know
BINS = 10  # numeric columns: training deciles, so each bin holds about a tenth of the rows
RARE_SHARE = 0.01  # categories rarer than this are pooled into "other": a few rows would make PSI noisy
MAX_LEVELS = 50  # categories kept by name, most frequent first; the rest are pooled too
MAX_OTHER_LEVELS = 200  # pooled names listed (to tell a rare category from an unseen one); keeps an id column small
MAX_PROFILE_CHARS = 5_000_000  # a profile is kilobytes; refuse to parse anything near this
SHARE_DIGITS = 6


class ProfileError(ValueError):
    """A reference profile that is not well formed; the message names the field."""


Share = Annotated[float, Field(ge=0, le=1)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)


def _sums_to_one(shares: list[float], where: str) -> None:
    # Shares are rounded to SHARE_DIGITS each: their sum is 1 to within the rounding of ~MAX_LEVELS terms.
    if shares and not math.isclose(sum(shares), 1.0, abs_tol=1e-3):
        raise ValueError(f"{where} must add up to 1, not {sum(shares):.6g}")


class NumericColumn(_Strict):
    """Bins are (-inf, edges[0]], (edges[0], edges[1]], ..., (edges[-1], inf): open at both ends, so
    a scored value outside the training range still falls in a bin (and counts as out of range)."""

    null_fraction: Share
    min: float | None
    max: float | None
    edges: list[float] = Field(max_length=4 * BINS)
    shares: list[Share] = Field(max_length=4 * BINS + 1)  # of the non-blank rows; empty if there were none

    @model_validator(mode="after")
    def _consistent(self) -> NumericColumn:
        if any(b <= a for a, b in zip(self.edges, self.edges[1:], strict=False)):
            raise ValueError("edges must be strictly increasing")
        if self.shares and len(self.shares) != len(self.edges) + 1:
            raise ValueError(f"{len(self.edges)} edges make {len(self.edges) + 1} bins, not {len(self.shares)} shares")
        if not self.shares and (self.edges or self.null_fraction < 1):
            raise ValueError("shares are missing (only a column of blanks has none)")
        _sums_to_one(self.shares, "shares")
        if (self.min is None) != (self.max is None) or (self.min is not None and self.min > self.max):
            raise ValueError(f"min {self.min} and max {self.max} must both be numbers, min at most max, or both null")
        return self


class CategoricalColumn(_Strict):
    null_fraction: Share
    shares: dict[str, Share] = Field(max_length=MAX_LEVELS)  # of the non-blank rows, by category
    other: Share = 0.0  # the share of the pooled rare categories
    other_levels: list[str] = Field(default=[], max_length=MAX_OTHER_LEVELS)
    # False when there were more rare categories than MAX_OTHER_LEVELS: an unlisted one may not be new.
    other_levels_complete: bool = True

    @model_validator(mode="after")
    def _consistent(self) -> CategoricalColumn:
        both = sorted(set(self.shares) & set(self.other_levels))
        if both:
            raise ValueError(f"categories {both[:3]} are both kept and pooled")
        if self.shares or self.other:
            _sums_to_one([*self.shares.values(), self.other], "shares and other")
        elif self.null_fraction < 1:
            raise ValueError("shares are missing (only a column of blanks has none)")
        return self


class PredictionProfile(NumericColumn):
    # "value" for a regression, "probability" of `label` (the positive class) for a classification.
    kind: Literal["value", "probability"]
    label: str | None = None
    rows: int = Field(ge=1)


class Profile(_Strict):
    format: int
    dataset: str
    task: Literal["regression", "classification"]
    rows: int = Field(ge=1)
    numeric: dict[str, NumericColumn]
    categorical: dict[str, CategoricalColumn]
    prediction: PredictionProfile

    @field_validator("format", mode="before")
    @classmethod
    def _known_format(cls, value: Any) -> int:
        if value != FORMAT or isinstance(value, bool):
            raise ValueError(f"profile format {value!r} is not one this code reads ({FORMAT})")
        return value

    @model_validator(mode="after")
    def _consistent(self) -> Profile:
        both = sorted(set(self.numeric) & set(self.categorical))
        if both:
            raise ValueError(f"column(s) {both} are both numeric and categorical")
        if not self.numeric and not self.categorical:
            raise ValueError("the profile holds no columns")
        expected = "probability" if self.task == "classification" else "value"
        if self.prediction.kind != expected:
            raise ValueError(f"prediction.kind {self.prediction.kind!r} does not fit task {self.task!r}")
        return self

    @property
    def column_names(self) -> list[str]:
        return [*self.numeric, *self.categorical]


def load_profile(data: dict | str | Profile) -> Profile:
    """A profile from its dict or JSON text, checked field by field; ProfileError names each bad one."""
    if isinstance(data, Profile):
        return data
    if isinstance(data, str | bytes):
        if len(data) > MAX_PROFILE_CHARS:
            raise ProfileError(f"profile is {len(data):,} characters; a profile is at most {MAX_PROFILE_CHARS:,}")
        try:
            data = json.loads(data)
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise ProfileError(f"profile is not valid JSON: {exc}") from None
    if not isinstance(data, dict):
        raise ProfileError(f"profile must be a mapping of profile fields, not {type(data).__name__}")
    try:
        return Profile.model_validate(data)
    except ValidationError as exc:
        lines = []
        for err in exc.errors():
            field = ".".join(str(part) for part in err["loc"]) or "(top level)"
            message = "unknown field" if err["type"] == "extra_forbidden" else err["msg"].removeprefix("Value error, ")
            lines.append(f"  {field}: {message}")
        raise ProfileError("profile is not a valid drift profile:\n" + "\n".join(lines)) from None


def _round(value: float) -> float:
    return round(float(value), SHARE_DIGITS)


def numbers(values) -> np.ndarray:
    """A column as float64, blanks (and text that is no number) as NaN."""
    return pd.to_numeric(pd.Series(values), errors="coerce").to_numpy(dtype="float64", na_value=np.nan)


def bin_shares(values: np.ndarray, edges: list[float]) -> np.ndarray:
    """The share of non-blank `values` in each bin of `edges` (NumericColumn); empty if all are blank."""
    values = values[~np.isnan(values)]
    if not len(values):
        return np.array([])
    # side="left": edges[i-1] < value <= edges[i] goes to bin i, so bins are closed on the right.
    counts = np.bincount(
        np.searchsorted(np.asarray(edges, dtype="float64"), values, side="left"), minlength=len(edges) + 1
    )
    return counts / len(values)


def numeric_profile(values) -> dict[str, Any]:
    values = numbers(values)
    finite = values[np.isfinite(values)]
    null_fraction = float(np.isnan(values).mean()) if len(values) else 1.0
    if not len(finite):
        return {"null_fraction": null_fraction, "min": None, "max": None, "edges": [], "shares": []}
    # Quantiles that are data values (inverted CDF), cut to 6 significant digits to keep the profile
    # small; a value that fills several deciles (a 0 for "no pool") gives one edge, not several.
    quantiles = np.quantile(finite, np.arange(1, BINS) / BINS, method="inverted_cdf")
    edges = sorted({float(f"{q:.6g}") for q in quantiles})
    shares = bin_shares(values, edges)
    return {
        "null_fraction": _round(null_fraction),
        "min": float(finite.min()),
        "max": float(finite.max()),
        "edges": edges,
        "shares": [_round(s) for s in shares],
    }


def categories(values) -> pd.Series:
    """A column's non-blank values as text (a CSV may read a code column `1, 2` as numbers)."""
    series = pd.Series(values, dtype=object)
    series = series[series.notna()]
    return series.map(lambda v: v if isinstance(v, str) else str(v))


def categorical_profile(values) -> dict[str, Any]:
    series = pd.Series(values, dtype=object)
    null_fraction = float(series.isna().mean()) if len(series) else 1.0
    shares = categories(series).value_counts(normalize=True, sort=True)
    kept = shares[shares >= RARE_SHARE].head(MAX_LEVELS)
    pooled = shares.drop(kept.index)
    return {
        "null_fraction": _round(null_fraction),
        "shares": {str(level): _round(share) for level, share in kept.items()},
        "other": _round(pooled.sum()),
        "other_levels": [str(level) for level in pooled.index[:MAX_OTHER_LEVELS]],
        "other_levels_complete": len(pooled) <= MAX_OTHER_LEVELS,
    }


def prediction_values(predictions, task: str, label: str | None) -> np.ndarray:
    """The model's output as one float per row: the predicted value (regression) or the probability of
    `label`, the positive class (classification). A frame as `lifecycle.scoring.batch.predict_frame`
    writes it is read by its column names."""
    if isinstance(predictions, pd.DataFrame):
        column = f"probability_{label}" if task == "classification" else "prediction"
        if column not in predictions:
            raise ValueError(f"predictions have no column {column!r} (columns: {list(predictions.columns)[:6]})")
        predictions = predictions[column]
    array = np.asarray(predictions)
    if array.ndim != 1:
        what = f"the probability of {label!r}" if task == "classification" else "the predicted value"
        raise ValueError(f"predictions must be one number per row ({what}), not an array of shape {array.shape}")
    try:
        values = array.astype("float64")
    except (TypeError, ValueError):
        wanted = f"the probability of {label!r}" if task == "classification" else "predicted values"
        raise ValueError(f"predictions must be numbers ({wanted}); got {array[:1].tolist()[0]!r}") from None
    outside = values[(values < 0) | (values > 1)]
    if task == "classification" and len(outside):
        raise ValueError(f"predictions must be probabilities of {label!r} in [0, 1]; got {float(outside[0])!r}")
    return values


def build_profile(features: pd.DataFrame, predictions, config: DatasetConfig) -> dict[str, Any]:
    """The reference profile of the training split's input columns and the model's predictions, as JSON-ready data.

    `predictions` are the model's outputs for reference rows (see prediction_values); they need not
    be these rows: a model that fits its training rows closely predicts them more confidently than it
    will new ones, and the holdout split's predictions are the fairer reference then.
    """
    if features.empty:
        raise ValueError("no rows to profile")
    missing = [name for name in config.feature_columns if name not in features]
    if missing:
        raise ValueError(f"features lack the input column(s) {', '.join(map(repr, missing))}")
    label = config.target.classes[-1] if config.task == "classification" else None
    values = prediction_values(predictions, config.task, label)
    if not len(values):
        raise ValueError("no predictions to profile")
    profile = {
        "format": FORMAT,
        "dataset": config.name,
        "task": config.task,
        "rows": len(features),
        "numeric": {name: numeric_profile(features[name]) for name in config.numeric_columns},
        "categorical": {name: categorical_profile(features[name]) for name in config.categorical_columns},
        "prediction": {
            "kind": "probability" if config.task == "classification" else "value",
            "label": label,
            "rows": len(values),
            **numeric_profile(values),
        },
    }
    # Through the reader, so a profile this code writes is always one it accepts.
    return load_profile(profile).model_dump(mode="json")
