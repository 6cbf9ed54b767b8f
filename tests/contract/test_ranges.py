"""Reading the numeric columns' training ranges from an MLmodel's metadata: what registration writes
reads back, and anything else is refused naming the field, column or value."""

import math

import pytest

from lifecycle.contract.ranges import InputRangesError, ranges_metadata, read_input_ranges

NUMERIC = frozenset({"area", "rooms"})


def test_what_registration_writes_reads_back():
    metadata = {"input_ranges": ranges_metadata({"area": (1300, 215245.5), "rooms": (0.0, 0.0)})}
    assert metadata == {"input_ranges": {"area": {"min": 1300.0, "max": 215245.5}, "rooms": {"min": 0.0, "max": 0.0}}}
    assert read_input_ranges(metadata, NUMERIC) == {"area": (1300.0, 215245.5), "rooms": (0.0, 0.0)}


def test_a_column_may_lack_a_range_and_integers_are_numbers():
    assert read_input_ranges({"input_ranges": {"rooms": {"min": 1, "max": 8}}}, NUMERIC) == {"rooms": (1.0, 8.0)}
    assert read_input_ranges({"input_ranges": {}, "other": "kept apart"}, NUMERIC) == {}


@pytest.mark.parametrize(
    ("metadata", "message"),
    [
        (None, "metadata.input_ranges: missing (the model was registered without training ranges)"),
        ({"author": "x"}, "metadata.input_ranges: missing (the model was registered without training ranges)"),
        (["input_ranges"], "metadata: expected a mapping, got list"),
        ({"input_ranges": [[1, 2]]}, "metadata.input_ranges: expected a mapping of column to {min, max}, got list"),
        ({"input_ranges": None}, "metadata.input_ranges: expected a mapping of column to {min, max}, got null"),
        (
            {"input_ranges": {f"c{i}": {"min": 0, "max": 1} for i in range(3)}},
            "metadata.input_ranges: has 3 entries; the signature has 2 numeric columns",
        ),
        (
            {"input_ranges": {"street": {"min": 0, "max": 1}}},
            "metadata.input_ranges: 'street' is not a numeric input column of the signature",
        ),
        (
            {"input_ranges": {7: {"min": 0, "max": 1}}},
            "metadata.input_ranges: 7 is not a numeric input column of the signature",
        ),
        (
            {"input_ranges": {"area": [0, 1]}},
            "metadata.input_ranges.area: expected {min: number, max: number}, got 'list'",
        ),
        (
            {"input_ranges": {"area": {"min": 0}}},
            "metadata.input_ranges.area: expected {min: number, max: number}, got ['min']",
        ),
        (
            {"input_ranges": {"area": {"min": 0, "max": 1, "mean": 0.5}}},
            "metadata.input_ranges.area: expected {min: number, max: number}, got ['max', 'mean', 'min']",
        ),
        (
            {"input_ranges": {"area": {"min": "0", "max": 1}}},
            "metadata.input_ranges.area.min: expected a finite number, got str '0'",
        ),
        (
            {"input_ranges": {"area": {"min": 0, "max": True}}},
            "metadata.input_ranges.area.max: expected a finite number, got bool True",
        ),
        (
            {"input_ranges": {"area": {"min": None, "max": 1}}},
            "metadata.input_ranges.area.min: expected a finite number, got null None",
        ),
        (
            {"input_ranges": {"rooms": {"min": 0, "max": math.inf}}},
            "metadata.input_ranges.rooms.max: expected a finite number, got inf",
        ),
        (
            {"input_ranges": {"rooms": {"min": math.nan, "max": 1}}},
            "metadata.input_ranges.rooms.min: expected a finite number, got nan",
        ),
        (
            {"input_ranges": {"rooms": {"min": 0, "max": 10**400}}},
            "metadata.input_ranges.rooms.max: expected a finite number, got 1000000000000000000000000000000000000...",
        ),
        (
            {"input_ranges": {"area": {"min": 10.5, "max": 2}}},
            "metadata.input_ranges.area: min 10.5 is above max 2.0",
        ),
    ],
)
def test_malformed_or_missing_ranges_are_refused_naming_the_field(metadata, message):
    with pytest.raises(InputRangesError) as refused:
        read_input_ranges(metadata, NUMERIC)
    assert str(refused.value) == message


def test_a_long_column_name_is_cut_short_in_the_message():
    with pytest.raises(InputRangesError, match=r"'xxxx+\.\.\. is not a numeric input column"):
        read_input_ranges({"input_ranges": {"x" * 1000: {"min": 0, "max": 1}}}, NUMERIC)
