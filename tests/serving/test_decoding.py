"""Typed decoding: V1 rows, V1 columns and V2 tensors decoded by msgspec straight into the columns accept
only what the general path accepts and give the same frame; the model's known text values come back shared."""

import json
from functools import partial

import msgspec
import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lifecycle.contract.signature import Column
from serving.checks import request_id, rows_from_v1, rows_from_v2
from serving.columns import InputSchema
from serving.decoding import (
    KNOWN_VALUE_LENGTH,
    KNOWN_VALUES_PER_COLUMN,
    MAX_OPENED_SETS,
    TypedDecoders,
    rows_from_v1_typed,
    rows_from_v2_typed,
)
from serving.errors import RequestError
from serving.frames import FrameLayout, frame_from_columns
from tests.serving.toy_schema import SCHEMA, flat_tensors, refused, tensors

DECODERS = TypedDecoders(SCHEMA)
LAYOUT = FrameLayout.of(SCHEMA)


def typed_path(decode, data: bytes):
    """What a typed decoding makes of a body: rows, None (the general path's to decide) or the error
    it refuses it with."""
    try:
        return decode(data, DECODERS, 10)
    except RequestError as exc:
        return exc


def assert_typed_agrees(fast, general) -> None:
    """The typed decoding's rows (or refusal) against the general path's: the same refusal, or the
    same rows and frame."""
    if isinstance(fast, RequestError):
        assert isinstance(general, RequestError), f"the typed path refused ({fast}) what the general path accepts"
        assert (fast.field, fast.problem) == (general.field, general.problem)
        return
    assert not isinstance(general, Exception), f"the typed path accepted what the general path refuses: {general}"
    assert (fast.count, fast.field) == (general.count, general.field)
    assert frame_from_columns(fast.columns, LAYOUT).equals(frame_from_columns(general.columns, LAYOUT))


def general_path(data: bytes, schema: InputSchema = SCHEMA, max_rows: int = 10):
    """The rows the general path makes of a body, or the RequestError it refuses it with."""
    try:
        return rows_from_v1(orjson.loads(data), schema, max_rows)
    except (RequestError, orjson.JSONDecodeError) as exc:
        return exc


def test_row_objects_that_fit_are_decoded_typed():
    data = json.dumps(
        {"instances": [{"street": "Pave", "area": 1, "rooms": 3}, {"area": 2.5, "street": "Grvl"}]}
    ).encode()
    rows = rows_from_v1_typed(data, DECODERS, 10)
    assert rows is not None and rows.count == 2 and rows.field == "instances"
    assert {k: list(v) for k, v in rows.columns.items()} == {
        "area": [1.0, 2.5],
        "rooms": [3, None],
        "street": ["Pave", "Grvl"],
    }
    assert frame_from_columns(rows.columns, LAYOUT).equals(frame_from_columns(general_path(data).columns, LAYOUT))


def test_column_arrays_that_fit_are_decoded_typed():
    data = json.dumps({"inputs": {"street": ["Pave", "Grvl"], "area": [1, 2.5], "rooms": None}}).encode()
    rows = rows_from_v1_typed(data, DECODERS, 10)
    assert rows is not None and rows.count == 2 and rows.field == "inputs"
    assert {k: list(v) for k, v in rows.columns.items()} == {
        "area": [1.0, 2.5],
        "rooms": [None, None],
        "street": ["Pave", "Grvl"],
    }
    assert frame_from_columns(rows.columns, LAYOUT).equals(frame_from_columns(general_path(data).columns, LAYOUT))


def test_column_names_need_not_be_identifiers():
    odd = InputSchema((Column("1st Flr SF", "double", "number", True), Column("class", "string", "string", True)))
    rows = rows_from_v1_typed(b'{"inputs": [{"class": "A", "1st Flr SF": 856}]}', TypedDecoders(odd), 10)
    assert rows.columns == {"1st Flr SF": (856.0,), "class": ("A",)} and rows.field == "inputs"


@pytest.mark.parametrize(
    "body",
    [
        {"instances": [{"area": 1.0, "street": "Pave"}], "inputs": [{"area": 1.0, "street": "Pave"}]},
        {"rows": [{"area": 1.0, "street": "Pave"}]},
        {"instances": [{"area": 1.0, "rooms": 2.0, "street": "Pave"}]},  # a whole float in an integer column
        {"instances": [{"area": 1.0, "rooms": 2**70, "street": "Pave"}]},  # orjson reads it as a float
        {"instances": {"area": [1.0, 2.0], "street": ["Pave"]}},
        {"instances": {"area": None, "street": ["Pave"]}},
        {"instances": {"area": [1.0], "street": ["Pave"], "road": ["Pave"]}},
    ],
    ids=[
        "both-keys",
        "no-rows",
        "whole-float-integer",
        "beyond-64-bits",
        "columns-of-two-lengths",
        "required-column-null",
        "unknown-column",
    ],
)
def test_other_bodies_take_the_general_path(body):
    assert rows_from_v1_typed(json.dumps(body).encode(), DECODERS, 10) is None


def test_the_row_limit_and_an_empty_batch_hold_on_the_typed_path():
    refused(
        lambda: rows_from_v1_typed(json.dumps({"instances": [{"area": 1, "street": "x"}] * 3}).encode(), DECODERS, 2),
        "instances",
        "more than the limit of 2",
    )
    refused(lambda: rows_from_v1_typed(b'{"inputs": []}', DECODERS, 2), "inputs", "the batch is empty")
    refused(
        lambda: rows_from_v1_typed(b'{"inputs": {"area": [1, 2, 3], "street": ["x", "y", "z"]}}', DECODERS, 2),
        "inputs",
        "more than the limit of 2",
    )
    refused(
        lambda: rows_from_v1_typed(b'{"inputs": {"area": [], "street": []}}', DECODERS, 2),
        "inputs",
        "the batch is empty",
    )


_ANY = st.one_of(
    st.none(),
    st.booleans(),
    st.text(max_size=3),
    st.integers(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=False, allow_infinity=False),
    st.just(2.0),
    st.lists(st.integers(), max_size=2),
)
_NUMBER = st.integers(-(2**53), 2**53) | st.floats(allow_nan=False, allow_infinity=False)


def mostly(fitting, other, odds: int = 4):
    """Values from `fitting`, from `other` one time in `odds`."""
    return st.integers(1, odds).flatmap(lambda i: other if i == 1 else fitting)


def rarely(fitting, other):
    """For bodies with many values: fitting throughout a good share of the time."""
    return mostly(fitting, other, odds=15)


# Rows that mostly fit, with a value of any JSON type here and there; now and then a row of any shape.
_ROW = st.fixed_dictionaries(
    {"area": mostly(_NUMBER, _ANY), "street": mostly(st.text(max_size=3), _ANY)},
    optional={"rooms": mostly(st.none() | st.integers(-(2**63), 2**63 - 1), _ANY)},
)
_ANY_ROW = st.dictionaries(st.sampled_from(["area", "rooms", "street", "road"]), _ANY, max_size=4) | _ANY
_RECORDS = st.lists(mostly(_ROW, _ANY_ROW), min_size=1, max_size=3)

# Columns that mostly fit: now and then a value of any type, an array of another length or not an array.
_COLUMNS = st.integers(1, 3).flatmap(
    lambda n: st.tuples(
        st.fixed_dictionaries(
            {
                "area": rarely(st.lists(rarely(_NUMBER, _ANY), min_size=n, max_size=n), _ANY),
                "street": rarely(st.lists(rarely(st.text(max_size=3), _ANY), min_size=n, max_size=n), _ANY),
            },
            optional={
                "rooms": rarely(
                    st.none()
                    | st.lists(rarely(st.none() | st.integers(-(2**63), 2**63 - 1), _ANY), min_size=n, max_size=n),
                    _ANY,
                )
            },
        ),
        rarely(
            st.just({}), st.fixed_dictionaries({"road": st.lists(_ANY, max_size=2)})
        ),  # an unknown column now and then
    ).map(lambda parts: {**parts[0], **parts[1]})
)


@settings(max_examples=800, deadline=None)
@given(sent=_RECORDS | _COLUMNS, key=st.sampled_from(["instances", "inputs"]))
def test_the_typed_path_accepts_only_what_the_general_path_accepts(sent, key):
    data = json.dumps({key: sent}).encode()
    fast = typed_path(rows_from_v1_typed, data)
    if fast is not None:
        assert_typed_agrees(fast, general_path(data))


@settings(max_examples=200, deadline=None)
@given(
    st.lists(
        st.fixed_dictionaries(
            {
                "area": st.integers(-(2**53), 2**53) | st.floats(allow_nan=False, allow_infinity=False),
                "street": st.text(max_size=5),
            },
            optional={"rooms": st.none() | st.integers(-(2**63), 2**63 - 1)},
        ),
        min_size=1,
        max_size=5,
    )
)
def test_rows_that_fit_always_take_the_typed_path(records):
    assert rows_from_v1_typed(json.dumps({"instances": records}).encode(), DECODERS, 10) is not None


def v2_general_path(data: bytes, schema: InputSchema = SCHEMA, max_rows: int = 10):
    """The rows and request id the general path makes of a V2 body, or the error it refuses it with."""
    try:
        body = orjson.loads(data)
        return rows_from_v2(body, schema, max_rows), request_id(body)
    except (RequestError, orjson.JSONDecodeError) as exc:
        return exc


def test_v2_tensors_that_fit_are_decoded_typed():
    data = json.dumps(
        {
            "id": "r1",
            "parameters": {"content_type": "pd"},
            "inputs": [
                {"name": "street", "shape": [2], "datatype": "BYTES", "data": ["Pave", "Grvl"]},
                {"name": "area", "shape": [2, 1], "datatype": "INT64", "data": [1, 2.0], "parameters": {}},
            ],
        }
    ).encode()
    rows, body = rows_from_v2_typed(data, DECODERS, 10)
    assert body.id == "r1" and rows.count == 2 and rows.field == "inputs"
    assert rows.columns == {"area": [1.0, 2.0], "rooms": [None, None], "street": ["Pave", "Grvl"]}
    general, _ = v2_general_path(data)
    assert frame_from_columns(rows.columns, LAYOUT).equals(frame_from_columns(general.columns, LAYOUT))


@pytest.mark.parametrize(
    ("change", "body"),
    [
        ("twice", {"inputs": flat_tensors() + flat_tensors()[:1]}),
        ("fraction-in-int-tensor", {"inputs": [dict(flat_tensors()[0], datatype="INT64"), *flat_tensors()[1:]]}),
        ("datatype", {"inputs": [dict(flat_tensors()[0], datatype="BYTES"), *flat_tensors()[1:]]}),
        ("shape-vs-data", {"inputs": [dict(flat_tensors()[0], shape=[3]), *flat_tensors()[1:]]}),
        ("wide-shape", {"inputs": [dict(flat_tensors()[0], shape=[2, 2]), *flat_tensors()[1:]]}),
        ("missing-required", {"inputs": flat_tensors()[1:]}),
        (
            "unknown-column",
            {"inputs": flat_tensors() + [{"name": "road", "shape": [2], "datatype": "BYTES", "data": ["x", "y"]}]},
        ),
        ("content-type", {"inputs": flat_tensors(), "parameters": {"content_type": "np"}}),
        ("id-not-text", {"inputs": flat_tensors(), "id": 7}),
        ("null-in-required", {"inputs": [dict(flat_tensors()[0], data=[1.5, None]), *flat_tensors()[1:]]}),
        ("lengths-differ", {"inputs": [dict(flat_tensors()[0], shape=[3], data=[1.5] * 3), *flat_tensors()[1:]]}),
    ],
    ids=lambda value: value if isinstance(value, str) else "",
)
def test_other_v2_bodies_take_the_general_path(change, body):
    assert (
        rows_from_v2_typed(json.dumps({"inputs": flat_tensors()}).encode(), DECODERS, 10) is not None
    )  # before the change
    data = json.dumps(body).encode()
    assert rows_from_v2_typed(data, DECODERS, 10) is None
    assert isinstance(v2_general_path(data), RequestError)


def test_v2_rows_of_one_value_take_the_general_path():
    data = json.dumps({"inputs": tensors()}).encode()  # rooms as [[3], [3]]
    assert rows_from_v2_typed(data, DECODERS, 10) is None
    rows, _ = v2_general_path(data)
    assert rows.columns["rooms"] == [3, 3]


def test_a_one_column_schema_decodes_v2_on_the_general_path():
    # msgspec would read a lone tagged tensor without its name
    one = InputSchema((Column("area", "double", "number", True),))
    body = b'{"inputs": [{"shape": [1], "datatype": "FP64", "data": [1.0]}]}'
    assert rows_from_v2_typed(body, TypedDecoders(one), 10) is None
    refused(
        lambda: rows_from_v2({"inputs": [{"shape": [1], "datatype": "FP64", "data": [1.0]}]}, one, 10),
        "inputs[0].name",
        "expected a string",
    )


def _v2_body(n: int):
    """A V2 body of n rows that mostly fits: now and then a tensor's name, shape, datatype or value is off."""

    def tensor(name, datatypes, value):
        return st.fixed_dictionaries(
            {
                "name": rarely(st.just(name), st.sampled_from(["area", "rooms", "street", "road"]) | _ANY),
                "shape": rarely(st.just([n]) | st.just([n, 1]), st.lists(_ANY, max_size=2)),
                "datatype": rarely(
                    st.sampled_from(datatypes), st.sampled_from(["FP64", "INT64", "BYTES", "BOOL"]) | _ANY
                ),
                "data": rarely(st.lists(rarely(value, _ANY), min_size=n, max_size=n), _ANY),
            }
        )

    inputs = (
        st.tuples(
            tensor("area", ["FP64", "FP32", "INT64"], _NUMBER),
            st.none() | tensor("rooms", ["INT64", "UINT8"], st.none() | st.integers(-(2**63), 2**63 - 1)),
            tensor("street", ["BYTES"], st.text(max_size=3)),
        )
        .map(lambda sent: [t for t in sent if t is not None])
        .flatmap(st.permutations)
    )
    return st.fixed_dictionaries(
        {"inputs": inputs},
        optional={"parameters": rarely(st.just({"content_type": "pd"}), _ANY), "id": rarely(st.text(max_size=3), _ANY)},
    )


@settings(max_examples=400, deadline=None)
@given(body=st.integers(1, 3).flatmap(_v2_body))
def test_typed_v2_accepts_only_what_the_general_path_accepts(body):
    data = json.dumps(body).encode()
    fast = typed_path(rows_from_v2_typed, data)
    if fast is None:
        return
    general = v2_general_path(data)
    if isinstance(fast, RequestError):
        return assert_typed_agrees(fast, general)
    assert not isinstance(general, Exception), f"the typed path accepted what the general path refuses: {general}"
    assert fast[1].id == general[1]  # the request id
    assert_typed_agrees(fast[0], general[0])


@settings(max_examples=200, deadline=None)
@given(
    st.integers(1, 4).flatmap(
        lambda n: st.fixed_dictionaries(
            {
                "area": st.lists(_NUMBER, min_size=n, max_size=n),
                "rooms": st.lists(st.none() | st.integers(-(2**63), 2**63 - 1), min_size=n, max_size=n),
                "street": st.lists(st.text(max_size=5), min_size=n, max_size=n),
            }
        )
    )
)
def test_columns_and_tensors_that_fit_always_take_the_typed_path(columns):
    assert rows_from_v1_typed(json.dumps({"instances": columns}).encode(), DECODERS, 10) is not None
    datatypes = {"area": "FP64", "rooms": "INT64", "street": "BYTES"}
    inputs = [{"name": k, "shape": [len(v)], "datatype": datatypes[k], "data": v} for k, v in columns.items()]
    assert rows_from_v2_typed(json.dumps({"inputs": inputs}).encode(), DECODERS, 10) is not None


def test_decoders_in_use_can_be_pickled_for_server_workers():
    """Server workers get the model pickled; msgspec's generated types cannot be, so the decoders
    travel as their schema and are made again."""
    import pickle

    body = b'{"instances": [{"area": 1, "street": "x"}]}'
    rows_from_v1_typed(body, DECODERS, 10)
    copy = pickle.loads(pickle.dumps(DECODERS))
    assert copy.schema == SCHEMA and rows_from_v1_typed(body, copy, 10).columns["area"] == (1.0,)
    assert pickle.loads(pickle.dumps(SCHEMA)) == SCHEMA


def records_body(streets: list) -> bytes:
    return json.dumps({"instances": [{"area": 1, "street": street} for street in streets]}).encode()


def seeded(*streets: str) -> TypedDecoders:
    """The decoders of SCHEMA with the streets a model's encoder knows."""
    return TypedDecoders(InputSchema(SCHEMA.columns, (("street", frozenset(streets)),)))


def test_known_text_values_come_back_as_one_object():
    decoders = seeded("Pave", "Grvl")
    first = rows_from_v1_typed(records_body(["Pave", "Grvl"]), decoders, 10)
    again = rows_from_v1_typed(records_body(["Grvl", "Pave", "Grvl"]), decoders, 10)
    assert again.columns["street"] == ("Grvl", "Pave", "Grvl")
    assert again.columns["street"][0] is again.columns["street"][2] is first.columns["street"][1]
    columns = rows_from_v1_typed(b'{"inputs": {"area": [1, 2], "street": ["Pave", "Pave"]}}', decoders, 10)
    assert columns.columns["street"][0] is columns.columns["street"][1] is first.columns["street"][0]
    tensors = json.dumps({"inputs": flat_tensors()}).encode()  # street: Pave, Pave
    rows, _ = rows_from_v2_typed(tensors, decoders, 10)
    assert rows.columns["street"][0] is rows.columns["street"][1] is first.columns["street"][0]


def test_values_the_model_does_not_know_are_decoded_as_any_text_and_change_nothing():
    """One client's values never change how another's request is decoded, nor the decoders."""
    decoders = seeded("Pave", "Grvl")
    made = decoders.known_text.v1_decoder, decoders.known_text.v2_decoder
    for _ in range(3):
        rows = rows_from_v1_typed(records_body(["Pave", "Gravel"]), decoders, 10)
        assert rows.columns["street"] == ("Pave", "Gravel")
    tensors = json.dumps(
        {"inputs": [dict(t, data=["Gravel"] * 2) if t["name"] == "street" else t for t in flat_tensors()]}
    ).encode()
    assert rows_from_v2_typed(tensors, decoders, 10)[0].columns["street"] == ["Gravel", "Gravel"]
    assert decoders.known_text.values == {"street": frozenset({"Pave", "Grvl"})}
    assert (decoders.known_text.v1_decoder, decoders.known_text.v2_decoder) == made
    with pytest.raises(msgspec.ValidationError):  # still only the model's values
        decoders.known_text.v1_decoder.decode(records_body(["Gravel"]))
    twice = rows_from_v1_typed(records_body(["Gravel", "Gravel"]), decoders, 10).columns["street"]
    assert twice[0] is not twice[1]  # decoded as any text: not shared


def test_a_value_the_model_does_not_know_opens_its_column_only():
    """The other text columns keep their shared strings: the model checks categories on them."""
    columns = (
        Column("street", "string", "string", True),
        Column("zone", "string", "string", True),
        Column("alley", "string", "string", False),
    )
    decoders = TypedDecoders(
        InputSchema(
            columns, (("street", frozenset({"Pave"})), ("zone", frozenset({"A"})), ("alley", frozenset({"No"})))
        )
    )
    rows = [{"street": "Pave", "zone": "A", "alley": "No"}, {"street": "Pave", "zone": "B", "alley": "Gravel"}] * 2
    sent = rows_from_v1_typed(json.dumps({"instances": rows}).encode(), decoders, 10).columns
    assert sent["zone"] == ("A", "B", "A", "B") and sent["alley"] == ("No", "Gravel", "No", "Gravel")
    assert sent["street"][0] is sent["street"][3]  # still the known value's one object
    assert sent["zone"][1] is not sent["zone"][3]  # opened: any text
    assert set(decoders.known_text._opened) == {frozenset(), frozenset({"zone"}), frozenset({"zone", "alley"})}
    by_column = json.dumps({"inputs": {"street": ["Pave", "Pave"], "zone": ["A", "C"], "alley": ["No", None]}})
    assert rows_from_v1_typed(by_column.encode(), decoders, 10).columns["zone"] == ["A", "C"]


def test_opened_decoders_are_bounded():
    """Clients choosing which columns to send unknown values in cannot make decoders without end."""
    n = MAX_OPENED_SETS + 5
    columns = tuple(Column(f"c{i}", "string", "string", True) for i in range(n))
    decoders = TypedDecoders(InputSchema(columns, tuple((f"c{i}", frozenset({"k"})) for i in range(n))))
    for i in range(n):
        row = {f"c{j}": "new" if j == i else "k" for j in range(n)}
        assert rows_from_v1_typed(json.dumps({"instances": [row]}).encode(), decoders, 10).columns == {
            name: (value,) for name, value in row.items()
        }
    assert len(decoders.known_text._opened) == MAX_OPENED_SETS


def test_a_column_the_model_knows_no_text_for_takes_any_text():
    decoders = TypedDecoders(InputSchema(SCHEMA.columns))
    assert decoders.known_text.values == {}
    assert rows_from_v1_typed(records_body(["anything"]), decoders, 10).columns["street"] == ("anything",)


@pytest.mark.parametrize(
    "streets",
    [[f"street {i}" for i in range(KNOWN_VALUES_PER_COLUMN + 1)], ["Pave", "x" * (KNOWN_VALUE_LENGTH + 1)]],
    ids=["too-many-values", "too-long"],
)
def test_a_column_past_the_limits_is_decoded_as_any_text(streets):
    decoders = seeded(*streets)
    assert "street" not in decoders.known_text.values
    decoders.known_text.v1_decoder.decode(records_body(["never seen"]))  # not a Literal: takes any text
    assert rows_from_v1_typed(records_body(["Pave", "never seen"]), decoders, 10).columns["street"] == (
        "Pave",
        "never seen",
    )


@pytest.mark.parametrize("depth", [2_000, 5_000, 200_000])
def test_nesting_too_deep_in_an_ignored_field_is_a_request_error(depth):
    """msgspec raises RecursionError past Python's recursion limit, even in a field it skips.
    (Where a value is expected the typed decoding stops at the first bracket, and the general path
    names the nesting: tests/serving/test_hostile_clients.py.)"""
    nested = b"[" * depth + b"]" * depth
    body = b'{"note": ' + nested + b', "instances": [{"area": 1, "street": "Pave"}]}'
    for typed in (rows_from_v1_typed, rows_from_v2_typed):
        refused(partial(typed, body, seeded("Pave"), 10), "body", "nested too deeply")
