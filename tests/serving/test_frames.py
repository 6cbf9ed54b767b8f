"""The batch's frame: the dtypes batch scoring gives, built from blocks (pandas' block API) or, where
that API is unavailable, with pandas' public constructor, the two always the same frame."""

import numpy as np
import pandas as pd
import pytest

from lifecycle.contract.signature import Column
from lifecycle.scoring.batch import conform_to_signature
from serving import frames
from serving.checks import rows_from_v1
from serving.columns import InputSchema
from serving.frames import FrameLayout, frame_from_blocks, frame_from_columns, frame_from_dict, numeric_block
from tests.serving.toy_schema import SCHEMA

MIXED = InputSchema(
    (
        Column("flag", "boolean", "boolean", False),
        Column("area", "double", "number", False),
        Column("street", "string", "string", False),
        Column("rooms", "long", "integer", False),
        Column("open", "boolean", "boolean", True),
        Column("zone", "string", "string", True),
    )
)
NUMBERS = InputSchema((Column("area", "double", "number", True), Column("rooms", "long", "integer", False)))
TEXT = InputSchema((Column("street", "string", "string", True), Column("zone", "string", "string", False)))
FLAGS = InputSchema((Column("flag", "boolean", "boolean", False),))


def test_records_and_columns_give_the_same_frame():
    layout = FrameLayout.of(SCHEMA)
    records = [{"area": 1.5, "rooms": 3, "street": "Pave"}, {"area": 2.0, "rooms": None, "street": "Grvl"}]
    by_records = frame_from_columns(rows_from_v1({"instances": records}, SCHEMA, 10).columns, layout)
    columns = {"area": [1.5, 2.0], "rooms": [3, None], "street": ["Pave", "Grvl"]}
    by_columns = frame_from_columns(rows_from_v1({"inputs": columns}, SCHEMA, 10).columns, layout)
    assert by_records.equals(by_columns)
    assert by_records["area"].dtype == np.float64 and by_records["street"].dtype == object


def test_boolean_columns_are_bool_unless_a_value_is_missing():
    layout = FrameLayout.of(FLAGS)
    assert frame_from_columns({"flag": [True, False]}, layout)["flag"].dtype == bool
    assert frame_from_columns({"flag": [True, None]}, layout)["flag"].dtype == object


@pytest.mark.parametrize("flags", [[True, False, True], [True, None, False]])
def test_the_frame_is_what_batch_scoring_makes_of_the_same_rows(flags):
    rows = {
        "flag": flags,
        "area": [1.5, None, 3],
        "street": ["Pave", None, "NA"],
        "rooms": [2, 3, None],
        "open": [False, True, True],
        "zone": ["RL", "RM", "RL"],
    }
    frame = frame_from_columns(rows_from_v1({"inputs": rows}, MIXED, 10).columns, FrameLayout.of(MIXED))
    batch = conform_to_signature(pd.DataFrame(rows), MIXED.columns, "rows.csv")
    pd.testing.assert_frame_equal(frame, batch)
    assert frame._mgr.nblocks == 4  # numbers, text, one per boolean column


def many_rows(count: int) -> dict[str, list]:
    """MIXED rows with every kind of value, a missing one now and then."""
    return {
        "flag": [None if i % 7 == 0 else i % 2 == 0 for i in range(count)],
        "area": [None if i % 5 == 0 else i * 1.25 for i in range(count)],
        "street": [None if i % 3 == 0 else f"street {i % 11}" for i in range(count)],
        "rooms": [None if i % 4 == 0 else i for i in range(count)],
        "open": [i % 3 == 0 for i in range(count)],
        "zone": [f"zone {i % 5}" for i in range(count)],
    }


CASES = {
    "numbers": (NUMBERS, {"area": [1.5, 2.0, -3.25], "rooms": [2, 3, 4]}),
    "numbers-missing": (NUMBERS, {"area": [1.5, 2, 0.0], "rooms": [None, 3, None]}),
    "text": (TEXT, {"street": ["Pave", "Grvl"], "zone": ["RL", "RM"]}),
    "text-missing": (TEXT, {"street": ["Pave", "Grvl"], "zone": [None, None]}),
    "booleans": (FLAGS, {"flag": [True, False, True]}),
    "booleans-with-none": (FLAGS, {"flag": [True, None, False]}),
    "mixed-one-row": (MIXED, {name: values[:1] for name, values in many_rows(1).items()}),
    "mixed-one-row-present": (MIXED, {name: values[1:2] for name, values in many_rows(2).items()}),
    "mixed-many-rows": (MIXED, many_rows(1000)),
    "decoded-tuples": (SCHEMA, {"area": (1.0, 2.5), "rooms": (None, 4), "street": ("Pave", "Grvl")}),
}


@pytest.mark.parametrize(("schema", "columns"), CASES.values(), ids=CASES.keys())
def test_the_public_constructor_builds_the_same_frame_as_the_blocks(schema, columns):
    layout = FrameLayout.of(schema)
    from_blocks = frame_from_blocks(columns, layout)
    from_dict = frame_from_dict(columns, layout)
    pd.testing.assert_frame_equal(from_dict, from_blocks, check_exact=True)
    pd.testing.assert_index_equal(from_dict.columns, layout.labels, exact=True)
    pd.testing.assert_index_equal(from_dict.index, pd.RangeIndex(len(next(iter(columns.values())))), exact=True)
    assert list(from_blocks.columns) == [c.name for c in schema.columns]


@pytest.mark.parametrize(("schema", "columns"), CASES.values(), ids=CASES.keys())
def test_a_numeric_block_built_beforehand_gives_the_same_frame(schema, columns):
    """The predictor builds the numeric block once, for the frame and the data-quality counts."""
    layout = FrameLayout.of(schema)
    numbers = numeric_block(columns, layout)
    assert (numbers is None) == (not layout.numbers)
    expected = frame_from_blocks(columns, layout)
    pd.testing.assert_frame_equal(frame_from_blocks(columns, layout, numbers), expected, check_exact=True)
    pd.testing.assert_frame_equal(frame_from_dict(columns, layout, numbers), expected, check_exact=True)


def test_the_pinned_pandas_builds_frames_from_blocks():
    layout = FrameLayout.of(MIXED)
    frame_from_columns(many_rows(3), layout)
    assert frames._block_api_error is None, frames._block_api_error


@pytest.mark.parametrize("error", [ImportError, AttributeError, TypeError])
def test_without_the_block_api_frames_come_from_the_public_constructor(monkeypatch, error):
    calls = []

    def unavailable(columns, layout, numbers=None):
        calls.append(layout)
        raise error("pandas.core.internals changed")

    monkeypatch.setattr(frames, "frame_from_blocks", unavailable)
    monkeypatch.setattr(frames, "_block_api_error", None)
    layout = FrameLayout.of(MIXED)
    rows = many_rows(20)
    first, second = frame_from_columns(rows, layout), frame_from_columns(rows, layout)
    expected = frame_from_dict(rows, layout)
    pd.testing.assert_frame_equal(first, expected)
    pd.testing.assert_frame_equal(second, expected)
    assert len(calls) == 1, "the block API is tried once, not on every batch"
    assert frames._block_api_error == f"{error.__name__}: pandas.core.internals changed"
