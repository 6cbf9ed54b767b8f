"""Data-quality counters of what clients send, at KServe's /metrics: per input column, the blank
values, the text values the model never saw in training and the numbers outside the training range.

Counted once per batch in the predict thread, on the batch's columns and its numeric block (the
float64 array the frame is built from, one row per numeric column): a comparison or two over that
block, and a C-level set test per text column that looks at values one by one only when some
value is not among the known ones. Only non-zero counts are added, to label children made at load.
Column labels come from the signature, never from a request.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
from prometheus_client import Counter

from lifecycle.contract.ranges import InputRangesError, read_input_ranges
from serving.columns import InputSchema
from serving.frames import FrameLayout

log = logging.getLogger(__name__)

ROWS = Counter("tabular_input_rows", "Rows scored by the model.", ["model"])
NULLS = Counter(
    "tabular_input_nulls",
    "Blank (null or left out) values in a column the signature lets be blank.",
    ["model", "column"],
)
UNSEEN = Counter(
    "tabular_input_unseen_categories",
    "Text values the model did not see in training, in a column whose categories it knows.",
    ["model", "column"],
)
OUT_OF_RANGE = Counter(
    "tabular_input_out_of_range",
    "Numbers below the training split's minimum or above its maximum.",
    ["model", "column"],
)


def input_ranges(metadata, schema: InputSchema, model: str) -> dict[str, tuple[float, float]]:
    """The model's training ranges from its MLmodel metadata; {} (range counting off) with one
    warning naming the field and why when they are missing or malformed."""
    try:
        return read_input_ranges(metadata, {c.name for c in schema.columns if c.numeric})
    except InputRangesError as exc:
        log.warning("out-of-range counting is off for model %s: %s", model, exc)
    except Exception as exc:  # whatever else an edited MLmodel holds must not stop the model either
        log.warning(
            "out-of-range counting is off for model %s: metadata unreadable: %s: %s", model, type(exc).__name__, exc
        )
    return {}


@dataclass(frozen=True, eq=False)
class QualityChecks:
    """What is counted for one model, fixed at load."""

    numbers: tuple[str, ...]  # the numeric block's columns, in its row order (FrameLayout.numbers)
    blank_numbers: np.ndarray  # rows of the block whose column may be blank
    ranged: np.ndarray  # rows of the block whose column has a training range
    low: np.ndarray  # [len(ranged), 1]: the training minimum of each ranged row
    high: np.ndarray
    blank_others: tuple[str, ...]  # text and boolean columns that may be blank
    categories: tuple[tuple[str, frozenset], ...]  # (text column, its known values and None)

    @classmethod
    def of(cls, schema: InputSchema, layout: FrameLayout, ranges: Mapping[str, tuple[float, float]]) -> QualityChecks:
        by_name = schema.by_name
        ranged = [i for i, name in enumerate(layout.numbers) if name in ranges]
        bounds = np.array([ranges[layout.numbers[i]] for i in ranged], dtype="float64").reshape(-1, 2)
        return cls(
            numbers=layout.numbers,
            blank_numbers=np.array(
                [i for i, name in enumerate(layout.numbers) if not by_name[name].required], dtype=np.intp
            ),
            ranged=np.array(ranged, dtype=np.intp),
            low=bounds[:, :1].copy(),
            high=bounds[:, 1:].copy(),
            blank_others=tuple(c.name for c in schema.columns if not c.numeric and not c.required),
            categories=tuple((name, known | {None}) for name, known in schema.text_values),
        )


@dataclass
class BatchCounts:
    """A batch's counts; only the columns with a non-zero count are listed."""

    rows: int
    nulls: list[tuple[str, int]]
    unseen: list[tuple[str, int]]
    out_of_range: list[tuple[str, int]]


def _nonzero(names: Sequence[str], rows: np.ndarray, counts: np.ndarray) -> list[tuple[str, int]]:
    return [(names[rows[i]], int(counts[i])) for i in np.flatnonzero(counts)]


def count_batch(
    columns: Mapping[str, Sequence], numbers: np.ndarray | None, rows: int, checks: QualityChecks
) -> BatchCounts:
    """Counts a batch: `columns` one sequence per signature column (None for a blank), `numbers`
    the numeric block (NaN for a blank; None without numeric columns)."""
    nulls: list[tuple[str, int]] = []
    out_of_range: list[tuple[str, int]] = []
    if numbers is not None:
        if len(checks.blank_numbers):
            nulls = _nonzero(checks.numbers, checks.blank_numbers, np.isnan(numbers[checks.blank_numbers]).sum(axis=1))
        if len(checks.ranged):
            block = numbers[checks.ranged] if len(checks.ranged) < len(numbers) else numbers
            outside = (block < checks.low) | (block > checks.high)  # NaN is neither
            if outside.any():
                out_of_range = _nonzero(checks.numbers, checks.ranged, outside.sum(axis=1))
    for name in checks.blank_others:
        blank = columns[name].count(None)
        if blank:
            nulls.append((name, blank))
    unseen = []
    for name, known in checks.categories:
        values = columns[name]
        if not known.issuperset(values):
            unseen.append((name, sum(1 for v in values if v not in known)))
    return BatchCounts(rows, nulls, unseen, out_of_range)


class InputQuality:
    """The model's counters with their label children, made at load."""

    def __init__(self, model: str, checks: QualityChecks):
        self.checks = checks
        self._rows = ROWS.labels(model=model)
        self._nulls = {
            name: NULLS.labels(model=model, column=name)
            for name in (*(checks.numbers[i] for i in checks.blank_numbers), *checks.blank_others)
        }
        self._unseen = {name: UNSEEN.labels(model=model, column=name) for name, _ in checks.categories}
        self._out_of_range = {
            checks.numbers[i]: OUT_OF_RANGE.labels(model=model, column=checks.numbers[i]) for i in checks.ranged
        }
        self._failed = False

    def count(self, columns: Mapping[str, Sequence], numbers: np.ndarray | None, rows: int) -> BatchCounts | None:
        """The batch's counts; None (and one warning, the first time) if counting fails, which
        must never fail a prediction."""
        try:
            return count_batch(columns, numbers, rows, self.checks)
        except Exception as exc:
            if not self._failed:
                self._failed = True
                log.warning("data-quality counting failed on a batch: %s: %s", type(exc).__name__, exc)
            return None

    def record(self, counts: BatchCounts | None) -> None:
        if counts is None:
            return
        self._rows.inc(counts.rows)
        for name, n in counts.nulls:
            self._nulls[name].inc(n)
        for name, n in counts.unseen:
            self._unseen[name].inc(n)
        for name, n in counts.out_of_range:
            self._out_of_range[name].inc(n)
