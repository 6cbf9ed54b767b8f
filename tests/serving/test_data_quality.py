"""The data-quality counters at /metrics of a real predictor, on the models the project's `training`
pipeline registered: blanks, unseen categories and numbers outside the training range in what
clients send, counted exactly, per model and column."""

from __future__ import annotations

import pandas as pd
import pytest

from lifecycle.contract.ranges import read_input_ranges
from lifecycle.contract.signature import signature_columns
from lifecycle.monitoring.reference import registered_profile
from lifecycle.registry.registered_model import load_registered
from serving.columns import category_values
from tests.serving.conftest import records, v2_tensors

pytestmark = pytest.mark.pipeline

COUNTERS = "tabular_input_"


def known(model) -> tuple[dict, dict, set]:
    """What the served model knows, read from the registered version as the predictor reads it:
    its numeric columns' training ranges, its categories, and its columns that may be blank."""
    trusted = load_registered(model.uri)
    columns = signature_columns(trusted.meta.signature)
    ranges = read_input_ranges(trusted.meta.metadata, {c.name for c in columns if c.numeric})
    return ranges, category_values(trusted.model), {c.name for c in columns if not c.required}


def clean_row(row: dict, ranges: dict, categories: dict) -> dict:
    """`row` with every value the model knows: numbers inside their range, known categories, no blanks."""
    row = dict(row)
    for name, (low, high) in ranges.items():
        if row[name] is None or not low <= row[name] <= high:
            row[name] = low
    for name, levels in categories.items():
        if row.get(name) not in levels:
            row[name] = levels[0]
    assert None not in row.values(), "a blank in a column the model has no categories for"
    return row


def increments(before: dict, after: dict) -> dict:
    """The counters that moved, as {(metric, model, column): increment}."""
    moved = {}
    for (name, labels), value in after.items():
        if name.endswith("_total") and value != before.get((name, labels), 0):
            label = dict(labels)
            moved[(name.removeprefix(COUNTERS), label["model"], label.get("column"))] = value - before.get(
                (name, labels), 0
            )
    return moved


def test_the_registered_model_carries_its_training_ranges_from_the_profile(ames_model):
    ranges, _, _ = known(ames_model)
    profile = registered_profile(ames_model.name, ames_model.version)
    expected = {name: (c.min, c.max) for name, c in profile.numeric.items() if c.min is not None}
    assert ranges == expected and len(ranges) == 33, "every Ames number had finite training values"


def test_ames_counts_blanks_unseen_categories_and_numbers_outside_the_range_exactly(ames_server, ames_model, ames_rows):
    ranges, categories, blank = known(ames_model)
    assert {"Mas_Vnr_Type", "Misc_Feature"} <= blank and "Neighborhood" in categories
    base = clean_row(records(ames_rows.head(1))[0], ranges, categories)
    low, high = ranges["Lot_Area"][1] + 1, ranges["Year_Built"][0] - 1
    odd = {**base, "Neighborhood": "Atlantis", "Lot_Area": low, "Misc_Feature": None}
    odder = {**base, "Neighborhood": "Gotham", "Year_Built": high, "Mas_Vnr_Type": None, "Misc_Feature": None}
    before = ames_server.metrics(COUNTERS)

    v1 = ames_server.predict_v1({"instances": [base, odd]})
    v2 = ames_server.infer_v2({"inputs": v2_tensors(pd.DataFrame([odder, base]))})
    refused = ames_server.predict_v1({"instances": [{**odd, "Lot_Area": None}]})  # a required column left blank

    assert v1.status_code == 200 and v2.status_code == 200, (v1.text, v2.text)
    assert refused.status_code == 400, "a refused request is no scored row"
    assert increments(before, ames_server.metrics(COUNTERS)) == {
        ("rows_total", "ames", None): 4,
        ("nulls_total", "ames", "Misc_Feature"): 2,
        ("nulls_total", "ames", "Mas_Vnr_Type"): 1,
        ("unseen_categories_total", "ames", "Neighborhood"): 2,
        ("out_of_range_total", "ames", "Lot_Area"): 1,
        ("out_of_range_total", "ames", "Year_Built"): 1,
    }


def test_every_counted_column_has_its_series_from_the_start(ames_server, ames_model):
    ranges, categories, blank = known(ames_model)
    series = {(name, dict(labels).get("column")) for name, labels in ames_server.metrics(COUNTERS)}
    assert {("tabular_input_out_of_range_total", c) for c in ranges} <= series
    assert {("tabular_input_unseen_categories_total", c) for c in categories} <= series
    assert {("tabular_input_nulls_total", c) for c in blank} <= series
    assert ("tabular_input_nulls_total", "Lot_Area") not in series, "a required column cannot be blank"


def test_telco_counts_a_blank_number_and_a_number_below_its_range(telco_server, telco_model, telco_rows):
    ranges, categories, optional = known(telco_model)
    assert "total_charges" in optional
    base = clean_row(records(telco_rows.head(1))[0], ranges, categories)
    low = ranges["monthly_charges"][0] - 5
    no_total = {**base, "total_charges": None}
    rows = pd.DataFrame([base, no_total, {**no_total, "monthly_charges": low}])
    before = telco_server.metrics(COUNTERS)
    answer = telco_server.infer_v2({"inputs": v2_tensors(rows)})
    assert answer.status_code == 200, answer.text
    assert increments(before, telco_server.metrics(COUNTERS)) == {
        ("rows_total", "telco", None): 3,
        ("nulls_total", "telco", "total_charges"): 2,
        ("out_of_range_total", "telco", "monthly_charges"): 1,
    }


def test_counting_can_be_turned_off_and_answers_stay_the_same(ames_server, ames_model, ames_rows, tmp_path):
    from tests.serving.conftest import start_server, stop_server

    body = {"inputs": v2_tensors(ames_rows.head(3))}
    server = start_server(ames_model.uri, "ames", tmp_path / "off.log", "--no-input-quality")
    try:
        answer = server.infer_v2(body)
        series = server.metrics(COUNTERS)
    finally:
        stop_server(server)
    assert answer.status_code == 200 and answer.json()["outputs"] == ames_server.infer_v2(body).json()["outputs"]
    assert series == {}, "no data-quality series without counting"
