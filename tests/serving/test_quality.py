"""Counting a batch's data quality: blanks, unseen categories and numbers outside the training range,
on the columns and numeric block the predictor builds its frame from, and the Prometheus counters."""

import logging

import numpy as np
import pytest
from prometheus_client import REGISTRY

from lifecycle.contract.signature import Column
from serving.checks import rows_from_v1
from serving.columns import InputSchema
from serving.frames import FrameLayout, numeric_block
from serving.quality import InputQuality, QualityChecks, count_batch, input_ranges

SCHEMA = InputSchema(
    (
        Column("area", "double", "number", True),
        Column("street", "string", "string", True),
        Column("rooms", "long", "integer", False),
        Column("zone", "string", "string", False),
        Column("depth", "double", "number", False),
        Column("note", "string", "string", False),
        Column("flag", "boolean", "boolean", False),
    ),
    text_values=(("street", frozenset({"Pave", "Grvl"})), ("zone", frozenset({"A", "B"}))),
)
LAYOUT = FrameLayout.of(SCHEMA)
RANGES = {"area": (100.0, 1000.0), "rooms": (1.0, 8.0)}  # depth has none
CHECKS = QualityChecks.of(SCHEMA, LAYOUT, RANGES)

CLEAN = {"area": 500.0, "street": "Pave", "rooms": 3, "zone": "A", "depth": 2.0, "note": "x", "flag": True}


def batch(*changes: dict):
    """Rows as the predictor has them: decoded from a V1 body, and the numeric block."""
    rows = rows_from_v1({"instances": [{**CLEAN, **change} for change in changes]}, SCHEMA, 100)
    return rows.columns, numeric_block(rows.columns, LAYOUT), rows.count


def counted(*changes: dict):
    counts = count_batch(*batch(*changes), CHECKS)
    return counts.rows, dict(counts.nulls), dict(counts.unseen), dict(counts.out_of_range)


def test_clean_rows_count_nothing_but_rows():
    assert counted({}) == (1, {}, {}, {})
    assert counted(*[{}] * 32) == (32, {}, {}, {})
    # the bounds themselves are inside the range
    assert counted({"area": 100.0, "rooms": 8}, {"area": 1000, "rooms": 1}) == (2, {}, {}, {})


def test_exact_counts_of_blanks_unseen_categories_and_numbers_outside_the_range():
    rows, nulls, unseen, outside = counted(
        {"rooms": None, "zone": None, "flag": None},
        {"zone": "C", "street": "Dirt", "area": 99.5, "depth": None},
        {"zone": "C", "street": "Gravel", "area": 1000.01, "rooms": 9, "note": None},
        {"rooms": 0, "depth": -1e9},  # depth has no range: never outside it
        {},
    )
    assert rows == 5
    assert nulls == {"rooms": 1, "depth": 1, "zone": 1, "note": 1, "flag": 1}
    assert unseen == {"zone": 2, "street": 2}  # a blank is not an unseen category
    assert outside == {"area": 2, "rooms": 2}  # a blank is not outside the range


def test_left_out_optional_columns_count_as_blanks():
    rows = rows_from_v1({"inputs": {"area": [150.0, 2000.0], "street": ["Pave", "Grvl"]}}, SCHEMA, 10)
    counts = count_batch(rows.columns, numeric_block(rows.columns, LAYOUT), rows.count, CHECKS)
    assert dict(counts.nulls) == {"rooms": 2, "depth": 2, "zone": 2, "note": 2, "flag": 2}
    assert dict(counts.out_of_range) == {"area": 1} and counts.unseen == []


def test_without_ranges_only_blanks_and_unseen_categories_are_counted():
    checks = QualityChecks.of(SCHEMA, LAYOUT, {})
    counts = count_batch(*batch({"area": 1e12, "rooms": None, "zone": "Q"}), checks)
    assert (dict(counts.nulls), dict(counts.unseen), counts.out_of_range) == ({"rooms": 1}, {"zone": 1}, [])


def test_a_schema_without_numbers_or_known_categories():
    text = InputSchema((Column("street", "string", "string", False),))
    layout = FrameLayout.of(text)
    rows = rows_from_v1({"instances": [{"street": None}, {"street": "Anything"}]}, text, 10)
    assert numeric_block(rows.columns, layout) is None
    counts = count_batch(rows.columns, None, rows.count, QualityChecks.of(text, layout, {}))
    assert (counts.rows, counts.nulls, counts.unseen, counts.out_of_range) == (2, [("street", 1)], [], [])


def sample(name: str, model: str, column: str | None = None) -> float | None:
    labels = {"model": model} if column is None else {"model": model, "column": column}
    return REGISTRY.get_sample_value(f"tabular_input_{name}_total", labels)


def test_the_counters_get_each_batch_and_start_at_zero_for_every_counted_column():
    quality = InputQuality("quality-unit", CHECKS)
    assert sample("rows", "quality-unit") == 0
    assert {c: sample("nulls", "quality-unit", c) for c in ("rooms", "depth", "zone", "note", "flag")} == dict.fromkeys(
        ("rooms", "depth", "zone", "note", "flag"), 0
    )
    assert sample("nulls", "quality-unit", "area") is None, "a required column cannot be blank: no series"
    assert sample("unseen_categories", "quality-unit", "note") is None, "no known categories: no series"
    assert sample("out_of_range", "quality-unit", "depth") is None, "no training range: no series"

    columns, numbers, rows = batch({"zone": "C", "area": 5.0, "flag": None}, {})
    quality.record(quality.count(columns, numbers, rows))
    quality.record(quality.count(*batch({"zone": "D"})))
    assert sample("rows", "quality-unit") == 3
    assert sample("unseen_categories", "quality-unit", "zone") == 2
    assert sample("unseen_categories", "quality-unit", "street") == 0
    assert sample("out_of_range", "quality-unit", "area") == 1
    assert sample("out_of_range", "quality-unit", "rooms") == 0
    assert sample("nulls", "quality-unit", "flag") == 1


def test_a_counting_failure_is_logged_once_and_counts_nothing(caplog):
    quality = InputQuality("quality-broken", CHECKS)
    with caplog.at_level(logging.WARNING, logger="serving.quality"):
        assert quality.count({"area": [1.0]}, np.ones((3, 1)), 1) is None  # no column "zone"
        assert quality.count({"area": [1.0]}, np.ones((3, 1)), 1) is None
    quality.record(None)
    assert sample("rows", "quality-broken") == 0
    assert [r.getMessage() for r in caplog.records] == ["data-quality counting failed on a batch: KeyError: 'zone'"]


@pytest.mark.parametrize(
    ("metadata", "reason"),
    [
        (None, "metadata.input_ranges: missing (the model was registered without training ranges)"),
        ({"input_ranges": {"area": {"min": 5, "max": 1}}}, "metadata.input_ranges.area: min 5.0 is above max 1.0"),
        ({"input_ranges": {"street": {"min": 0, "max": 1}}}, "'street' is not a numeric input column"),
    ],
)
def test_missing_or_malformed_ranges_turn_range_counting_off_with_one_warning(caplog, metadata, reason):
    with caplog.at_level(logging.WARNING, logger="serving.quality"):
        assert input_ranges(metadata, SCHEMA, "houses") == {}
    (record,) = caplog.records
    assert record.getMessage().startswith("out-of-range counting is off for model houses: ")
    assert reason in record.getMessage()


def test_valid_ranges_are_read_without_a_word(caplog):
    metadata = {"input_ranges": {"area": {"min": 100.0, "max": 1000.0}, "rooms": {"min": 1, "max": 8}}}
    with caplog.at_level(logging.WARNING, logger="serving.quality"):
        assert input_ranges(metadata, SCHEMA, "houses") == RANGES
    assert caplog.records == []
