"""Scored rows against the reference profile: which input columns, and whether the predictions, moved.

Per column: the population stability index (PSI) over the profile's bins, the rise in blanks, the
share of rows in a category training never had, and the share of rows outside the training range.
A column drifts when any of them is above its threshold (lifecycle.dataset.config.Monitoring).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from lifecycle.dataset.config import Monitoring
from lifecycle.monitoring.profile import (
    CategoricalColumn,
    NumericColumn,
    Profile,
    bin_shares,
    categories,
    load_profile,
    numbers,
    prediction_values,
)

# A bin share of 0 is taken as 0.0001 (0.01 %) on either side: ln(0) is undefined. Small enough that a
# bin which empties or fills still counts (an emptied 10 % bin alone adds ~0.69), large enough that one
# stray row in a bin training never filled adds only ~0.01 on a 500-row batch.
EPSILON = 1e-4
UNSEEN_SHOWN = 5  # most frequent unseen categories quoted per column
OTHER = "other"  # the pooled bin of a categorical column: its rare categories, and unseen ones


def with_blanks(shares, null_fraction: float) -> np.ndarray:
    """Shares of the non-blank rows as shares of all rows, blanks first as a bin of their own.

    PSI is taken over all rows: over the non-blank ones alone, a column that is 96 % blank (Ames'
    Misc_Feature) leaves some 20 values in a 500-row batch, and their shares swing by chance alone.
    """
    return np.array([null_fraction, *(np.asarray(shares, dtype="float64") * (1 - null_fraction))])


def psi(expected, actual) -> float:
    """Population stability index: sum over bins of (actual - expected) * ln(actual / expected)."""
    expected = np.clip(np.asarray(expected, dtype="float64"), EPSILON, None)
    actual = np.clip(np.asarray(actual, dtype="float64"), EPSILON, None)
    return float(np.sum((actual - expected) * np.log(actual / expected)))


@dataclass(frozen=True)
class ColumnDrift:
    name: str
    type: str  # numeric | categorical
    psi: float  # over all rows, blanks as a bin of their own (with_blanks)
    null_fraction: float
    training_null_fraction: float
    null_increase: float  # scored minus training share of blanks; negative when blanks became rarer
    unseen_fraction: float | None  # categorical: share of rows in a category training never had
    out_of_range_fraction: float | None  # numeric: share of rows below the training min or above its max
    # The scored shares in the profile's bins: a list beside its edges, or category -> share with OTHER.
    shares: list[float] | dict[str, float]
    unseen_values: list[tuple[str, int]]
    thresholds: dict[str, float]
    reasons: list[str] = field(default_factory=list)

    @property
    def drifted(self) -> bool:
        return bool(self.reasons)


@dataclass(frozen=True)
class PredictionDrift:
    kind: str  # value | probability
    psi: float
    threshold: float
    null_fraction: float
    shares: list[float]

    @property
    def drifted(self) -> bool:
        return self.psi > self.threshold


@dataclass(frozen=True)
class DriftResult:
    rows: int
    columns: dict[str, ColumnDrift]
    prediction: PredictionDrift
    min_drifted_columns: int

    @property
    def drifted_columns(self) -> dict[str, list[str]]:
        return {name: c.reasons for name, c in self.columns.items() if c.drifted}

    @property
    def drifted_count(self) -> int:
        return len(self.drifted_columns)

    @property
    def worst(self) -> ColumnDrift | None:
        """The column with the highest PSI."""
        return max(self.columns.values(), key=lambda c: c.psi, default=None)

    @property
    def verdict(self) -> str:
        """The branch to take: "drifted" when enough columns or the predictions drifted, else "stable"."""
        drifted = self.drifted_count >= self.min_drifted_columns or self.prediction.drifted
        return "drifted" if drifted else "stable"

    def summary(self) -> str:
        parts = [f"{self.drifted_count} of {len(self.columns)} columns drifted"]
        if self.drifted_count:
            parts[0] += f" ({', '.join(self.drifted_columns)})"
        moved = "drifted" if self.prediction.drifted else "stable"
        parts.append(f"predictions {moved} (PSI {self.prediction.psi:.3f})")
        return f"{self.verdict}: {'; '.join(parts)}"

    def to_dict(self) -> dict[str, Any]:
        worst = self.worst
        return {
            "verdict": self.verdict,
            "summary": self.summary(),
            "rows": self.rows,
            "drifted_count": self.drifted_count,
            "min_drifted_columns": self.min_drifted_columns,
            "drifted_columns": self.drifted_columns,
            "worst_psi": {"column": worst.name, "psi": worst.psi} if worst else None,
            "prediction": {**asdict(self.prediction), "drifted": self.prediction.drifted},
            "columns": {
                name: {**asdict(c), "unseen_values": [list(v) for v in c.unseen_values], "drifted": c.drifted}
                for name, c in self.columns.items()
            },
        }


def _percent(fraction: float) -> str:
    return f"{fraction * 100:.3g}%"


def _reasons(stats: dict[str, Any], thresholds: dict[str, float]) -> list[str]:
    reasons = []
    if stats["psi"] > thresholds["psi"]:
        reasons.append(f"PSI {stats['psi']:.3f} > {thresholds['psi']:g}")
    if stats["null_increase"] > thresholds["null_increase"]:
        reasons.append(
            f"blanks up from {_percent(stats['training_null_fraction'])} to {_percent(stats['null_fraction'])} "
            f"(+{_percent(stats['null_increase'])} > {_percent(thresholds['null_increase'])})"
        )
    if stats["unseen_fraction"] is not None and stats["unseen_fraction"] > thresholds["unseen_fraction"]:
        share, limit = _percent(stats["unseen_fraction"]), _percent(thresholds["unseen_fraction"])
        reasons.append(f"unseen categories in {share} of rows > {limit}")
    out = stats["out_of_range_fraction"]
    if out is not None and out > thresholds["out_of_range_fraction"]:
        reasons.append(
            f"outside the training range in {_percent(out)} of rows > {_percent(thresholds['out_of_range_fraction'])}"
        )
    return reasons


def _psi(expected, expected_nulls: float, actual, actual_nulls: float) -> float:
    """PSI over all rows, blanks as a bin (with_blanks); a side without non-blank values has only that bin."""
    if not len(expected):
        expected = np.zeros(len(actual))
    if not len(actual):
        actual = np.zeros(len(expected))
    return psi(with_blanks(expected, expected_nulls), with_blanks(actual, actual_nulls))


def _numeric(values: np.ndarray, reference: NumericColumn) -> dict[str, Any]:
    shares = bin_shares(values, reference.edges)
    present = ~np.isnan(values)
    null_fraction = float((~present).mean())
    outside = 0.0
    if reference.min is not None:
        outside = float(((values[present] < reference.min) | (values[present] > reference.max)).sum() / len(values))
    return {
        "psi": _psi(reference.shares, reference.null_fraction, shares, null_fraction),
        "null_fraction": null_fraction,
        "out_of_range_fraction": outside,
        "unseen_fraction": None,
        "shares": [float(s) for s in shares],
        "unseen_values": [],
    }


def _categorical(values: pd.Series, reference: CategoricalColumn) -> dict[str, Any]:
    text = categories(values)
    known = set(reference.shares)
    # With more rare categories than the profile lists, an unlisted one may be old: none counts as unseen then.
    unseen = text[~text.isin(known) & ~text.isin(reference.other_levels)]
    if not reference.other_levels_complete:
        unseen = unseen[:0]
    pooled = text.where(text.isin(known), OTHER)
    counts = pooled.value_counts()
    total = len(text)
    shares = {level: float(counts.get(level, 0) / total) if total else 0.0 for level in [*reference.shares, OTHER]}
    null_fraction = float(1 - total / len(values))
    expected = [*reference.shares.values(), reference.other] if reference.shares or reference.other else []
    return {
        "psi": _psi(expected, reference.null_fraction, list(shares.values()) if total else [], null_fraction),
        "null_fraction": null_fraction,
        "out_of_range_fraction": None,
        "unseen_fraction": float(len(unseen) / len(values)),
        "shares": shares,
        "unseen_values": [(str(v), int(n)) for v, n in unseen.value_counts().head(UNSEEN_SHOWN).items()],
    }


def check_drift(
    profile: Profile | dict | str, features: pd.DataFrame, predictions, monitoring: Monitoring | None = None
) -> DriftResult:
    """Compares scored rows (the model's input columns) and the model's predictions for them with the
    reference profile, at the thresholds of `monitoring` (its defaults when None)."""
    profile = load_profile(profile)
    monitoring = monitoring or Monitoring()
    if features.empty:
        raise ValueError("no scored rows to compare with the profile")
    missing = [name for name in profile.column_names if name not in features]
    if missing:
        raise ValueError(f"scored rows lack the profiled column(s) {', '.join(map(repr, missing))}")
    columns = {}
    for name in profile.column_names:
        if name in profile.numeric:
            reference, kind = profile.numeric[name], "numeric"
            stats = _numeric(numbers(features[name]), reference)
        else:
            reference, kind = profile.categorical[name], "categorical"
            stats = _categorical(features[name].reset_index(drop=True), reference)
        stats["training_null_fraction"] = reference.null_fraction
        stats["null_increase"] = stats["null_fraction"] - reference.null_fraction
        thresholds = monitoring.thresholds(name)
        columns[name] = ColumnDrift(
            name=name, type=kind, thresholds=thresholds, reasons=_reasons(stats, thresholds), **stats
        )
    reference = profile.prediction
    values = prediction_values(predictions, profile.task, reference.label)
    if len(values) != len(features):
        raise ValueError(f"{len(values)} predictions for {len(features)} scored rows")
    shares = bin_shares(values, reference.edges)
    prediction = PredictionDrift(
        kind=reference.kind,
        psi=_psi(reference.shares, reference.null_fraction, shares, float(np.isnan(values).mean())),
        threshold=monitoring.prediction_psi,
        null_fraction=float(np.isnan(values).mean()),
        shares=[float(s) for s in shares],
    )
    return DriftResult(len(features), columns, prediction, monitoring.min_drifted_columns)
