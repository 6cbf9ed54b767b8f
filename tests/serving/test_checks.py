"""The general path: request bodies decoded as any JSON and checked in Python, every mistake named by field."""

import pytest

from serving.checks import rows_from_v1, rows_from_v2
from tests.serving.toy_schema import SCHEMA, refused, tensors


def test_records_with_every_column_in_any_key_order():
    rows = rows_from_v1(
        {
            "instances": [
                {"area": 1.5, "rooms": 3, "street": "Pave"},
                {"street": "Grvl", "area": 2, "rooms": None},
            ]
        },
        SCHEMA,
        10,
    )
    assert rows.count == 2
    assert {k: list(v) for k, v in rows.columns.items()} == {
        "area": [1.5, 2],
        "rooms": [3, None],
        "street": ["Pave", "Grvl"],
    }


def test_records_may_leave_out_an_optional_column():
    rows = rows_from_v1(
        {"instances": [{"area": 1.0, "street": "Pave"}, {"area": 2.0, "rooms": 4, "street": "Grvl"}]}, SCHEMA, 10
    )
    assert list(rows.columns["rooms"]) == [None, 4]


@pytest.mark.parametrize(
    ("records", "field", "problem"),
    [
        (
            [{"area": 1.0, "rooms": 2, "street": "Pave"}, {"area": 1.0, "rooms": 2, "road": "Pave"}],
            "instances[1]",
            "unknown column(s): road",
        ),
        (
            [{"area": 1.0, "rooms": 2, "street": "Pave"}, {"rooms": 2, "street": "Pave"}],
            "instances[1]",
            "missing column(s): area",
        ),
        (
            [{"area": 1.0, "rooms": 2, "street": "Pave"}, [1.0, 2, "Pave"]],
            "instances[1]",
            "expected an object of column values, got array",
        ),
        (
            [{"area": "big", "rooms": 2, "street": "Pave"}],
            "instances[0].area",
            "expected a number (double), got string 'big'",
        ),
        ([{"area": 1.0, "rooms": 2.5, "street": "Pave"}], "instances[0].rooms", "expected an integer (long), got 2.5"),
        ([{"area": 1.0, "rooms": 2, "street": None}], "instances[0].street", "is required and may not be null"),
    ],
    ids=["unknown", "missing", "not-an-object", "text-for-number", "fraction-for-integer", "null-required"],
)
def test_record_mistakes_are_named(records, field, problem):
    refused(lambda: rows_from_v1({"instances": records}, SCHEMA, 10), field, problem)


def test_more_rows_than_the_limit():
    refused(
        lambda: rows_from_v1({"instances": [{"area": 1.0, "street": "x"}] * 3}, SCHEMA, 2),
        "instances",
        "more than the limit of 2",
    )


def test_v2_tensors_become_columns():
    rows = rows_from_v2({"inputs": tensors(), "parameters": {"content_type": "pd"}}, SCHEMA, 10)
    assert rows.count == 2 and rows.columns == {"area": [1.5, 1.5], "rooms": [3, 3], "street": ["Pave", "Pave"]}


@pytest.mark.parametrize(
    ("body", "field", "problem"),
    [
        ([], "body", "expected a JSON object with 'inputs', got array"),
        ({"inputs": [1]}, "inputs[0]", "expected a tensor object"),
        (
            {"inputs": [{"name": "area", "shape": [1], "data": [1.0]}]},
            "inputs[0].datatype",
            "expected a string, got nothing",
        ),
        ({"inputs": tensors(), "parameters": []}, "parameters", "expected an object, got array"),
        ({"inputs": tensors() + tensors()[:1]}, "inputs[3].name", "column 'area' is sent twice"),
        (
            {"inputs": [dict(tensors()[0], shape=[True]), *tensors()[1:]]},
            "inputs[0] (area).shape",
            "expected [rows] or [rows, 1]",
        ),
        ({"inputs": [dict(tensors()[0], datatype="BYTES"), *tensors()[1:]]}, "inputs[0] (area).datatype", "got BYTES"),
        (
            {"inputs": [dict(tensors()[0], shape=[3]), *tensors()[1:]]},
            "inputs[0] (area).data",
            "has 2 values but shape [3] says 3",
        ),
        (
            {"inputs": [dict(tensors()[0], datatype="INT64"), *tensors()[1:]]},
            "inputs[0] (area).data[0]",
            "expected an integer (INT64), got 1.5",
        ),
    ],
    ids=[
        "not-an-object",
        "tensor-not-object",
        "no-datatype",
        "parameters-not-object",
        "twice",
        "bool-shape",
        "datatype",
        "shape-vs-data",
        "fraction-in-int-tensor",
    ],
)
def test_v2_mistakes_are_named(body, field, problem):
    refused(lambda: rows_from_v2(body, SCHEMA, 10), field, problem)


def test_columns_with_a_required_column_sent_as_null():
    refused(
        lambda: rows_from_v1({"instances": {"area": None, "street": ["Pave"]}}, SCHEMA, 10),
        "instances.area",
        "is required and may not be null",
    )
    rows = rows_from_v1(
        {"instances": {"area": [1.0], "rooms": None, "street": ["Pave"]}}, SCHEMA, 10
    )  # optional: all null
    assert rows.columns["rooms"] == [None] and rows.field == "instances"
