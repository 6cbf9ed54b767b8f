"""The training range of each numeric input column, kept in the model's `MLmodel` as metadata.

Registration writes `metadata: {input_ranges: {column: {min: ..., max: ...}}}` (the training
split's finite minimum and maximum); the predictor reads it back to count request values outside
that range. The `MLmodel` file is not covered by the model file's digest, so whoever can write the
model folder can edit it: `read_input_ranges` accepts only a mapping of the signature's numeric
columns to finite numbers with min <= max, and names the field of the first thing wrong.
"""

from __future__ import annotations

import math
from collections.abc import Collection, Mapping
from typing import Any

INPUT_RANGES = "input_ranges"  # the key under MLmodel's `metadata`
FIELD = f"metadata.{INPUT_RANGES}"


class InputRangesError(ValueError):
    """Input ranges that cannot be used; the message names the field and why."""


def _shown(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def _type(value: Any) -> str:
    return "null" if value is None else type(value).__name__


def _bound(entry: Mapping, key: str, where: str) -> float:
    value = entry[key]
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise InputRangesError(f"{where}.{key}: expected a finite number, got {_type(value)} {_shown(value)}")
    try:
        number = float(value)
    except OverflowError:  # an integer too large for a float
        number = math.inf
    if not math.isfinite(number):
        raise InputRangesError(f"{where}.{key}: expected a finite number, got {_shown(value)}")
    return number


def ranges_metadata(ranges: Mapping[str, tuple[float, float]]) -> dict[str, dict[str, float]]:
    """`{column: (min, max)}` as registration writes it under `metadata.input_ranges`."""
    return {str(column): {"min": float(low), "max": float(high)} for column, (low, high) in ranges.items()}


def read_input_ranges(metadata: Any, numeric_columns: Collection[str]) -> dict[str, tuple[float, float]]:
    """`{column: (min, max)}` from an MLmodel's `metadata` (None when it has none), for the
    signature's numeric columns `numeric_columns`. A column may lack a range (no finite training
    value). Raises InputRangesError naming the field, column or value when the ranges are missing
    or malformed: a key that is not a numeric input, more entries than numeric inputs, a bound that
    is not a finite number, min above max."""
    if metadata is None:
        raise InputRangesError(f"{FIELD}: missing (the model was registered without training ranges)")
    if not isinstance(metadata, Mapping):
        raise InputRangesError(f"metadata: expected a mapping, got {_type(metadata)}")
    if INPUT_RANGES not in metadata:
        raise InputRangesError(f"{FIELD}: missing (the model was registered without training ranges)")
    found = metadata[INPUT_RANGES]
    if not isinstance(found, Mapping):
        raise InputRangesError(f"{FIELD}: expected a mapping of column to {{min, max}}, got {_type(found)}")
    if len(found) > len(numeric_columns):
        raise InputRangesError(
            f"{FIELD}: has {len(found):,} entries; the signature has {len(numeric_columns)} numeric columns"
        )
    ranges: dict[str, tuple[float, float]] = {}
    for column, entry in found.items():
        if not isinstance(column, str) or column not in numeric_columns:
            raise InputRangesError(f"{FIELD}: {_shown(column)} is not a numeric input column of the signature")
        where = f"{FIELD}.{column}"
        if not isinstance(entry, Mapping) or set(entry) != {"min", "max"}:
            shown = sorted(map(str, entry)) if isinstance(entry, Mapping) else _type(entry)
            raise InputRangesError(f"{where}: expected {{min: number, max: number}}, got {_shown(shown)}")
        low, high = _bound(entry, "min", where), _bound(entry, "max", where)
        if low > high:
            raise InputRangesError(f"{where}: min {low!r} is above max {high!r}")
        ranges[column] = (low, high)
    return ranges
