"""The wire shapes: requests built by the contract are what the predictor decodes, value for value,
and the predictor's answers read back through the contract."""

import json

import numpy as np
import orjson
import pandas as pd
import pytest
from mlflow.models import ModelSignature
from mlflow.types.schema import ColSpec, Schema

from lifecycle.contract.protocol import (
    V2_DATATYPE_OF_KIND,
    V2_DATATYPES_OF_KIND,
    AnswerError,
    answer_predictions,
    answered_version,
    infer_url,
    is_column_shape,
    parse_answer,
    prediction_output,
    records_from_frame,
    v1_columns_request,
    v1_predict_path,
    v1_request,
    v2_datatype,
    v2_infer_path,
    v2_input,
    v2_output,
    v2_ready_path,
    v2_request,
)
from lifecycle.scoring.batch import conform_to_signature
from serving.checks import request_id, rows_from_v1, rows_from_v2
from serving.columns import InputSchema
from serving.decoding import TypedDecoders, rows_from_v1_typed, rows_from_v2_typed
from serving.frames import FrameLayout, frame_from_columns
from tests.conftest import ROOT

SCHEMA = InputSchema.from_signature(
    ModelSignature(
        inputs=Schema(
            [
                ColSpec("double", "area"),
                ColSpec("long", "rooms", required=False),
                ColSpec("string", "street"),
                ColSpec("boolean", "open", required=False),
                ColSpec("double", "frontage", required=False),
            ]
        )
    )
)


def client_rows() -> pd.DataFrame:
    """Rows as a client holds them: numpy dtypes, a missing value in every optional column."""
    return pd.DataFrame(
        {
            "area": np.array([1.5, 2.0, 1e6]),
            "rooms": np.array([3, 4, 5], dtype="int64"),
            "street": ["Pave", "Grvl", "Pave"],
            "open": [True, None, False],
            "frontage": [np.nan, 60.0, 72.5],
        }
    )


def expected_frame(rows: pd.DataFrame) -> pd.DataFrame:
    """What batch scoring makes of the same rows: the predictor's frame must be exactly this."""
    return conform_to_signature(rows, SCHEMA.columns, "rows")


def test_a_v2_request_has_one_tensor_per_column_with_its_datatype():
    body = v2_request(client_rows())
    assert [(t["name"], t["datatype"], t["shape"]) for t in body["inputs"]] == [
        ("area", "FP64", [3]),
        ("rooms", "INT64", [3]),
        ("street", "BYTES", [3]),
        ("open", "BOOL", [3]),
        ("frontage", "FP64", [3]),
    ]
    by_name = {t["name"]: t["data"] for t in body["inputs"]}
    assert by_name["open"] == [True, None, False] and by_name["frontage"] == [None, 60.0, 72.5]
    assert "parameters" not in body
    assert v2_request(client_rows(), parameters={"content_type": "pd"})["parameters"] == {"content_type": "pd"}
    json.dumps(body, allow_nan=False)  # NaN is not JSON: missing values go as null


def test_a_v2_request_is_decoded_by_the_predictor_value_for_value():
    rows = client_rows()
    data = orjson.dumps(v2_request(rows))
    typed, body = rows_from_v2_typed(data, TypedDecoders(SCHEMA), 10)
    assert body.id is None and typed.count == 3
    assert list(typed.columns["rooms"]) == [3, 4, 5] and list(typed.columns["open"]) == [True, None, False]
    general = rows_from_v2(orjson.loads(data), SCHEMA, 10)
    layout = FrameLayout.of(SCHEMA)
    for decoded in (typed, general):
        pd.testing.assert_frame_equal(frame_from_columns(decoded.columns, layout), expected_frame(rows))


def test_v1_requests_are_decoded_by_the_predictor_value_for_value():
    rows = client_rows()
    layout = FrameLayout.of(SCHEMA)
    for body in (v1_request(rows), v1_columns_request(rows)):
        data = orjson.dumps(body)
        typed = rows_from_v1_typed(data, TypedDecoders(SCHEMA), 10)
        assert typed is not None and typed.field == "instances"
        general = rows_from_v1(orjson.loads(data), SCHEMA, 10)
        for decoded in (typed, general):
            pd.testing.assert_frame_equal(frame_from_columns(decoded.columns, layout), expected_frame(rows))


def test_the_two_v1_layouts_hold_the_same_rows():
    rows = client_rows()
    by_row = v1_request(rows)["instances"]
    by_column = v1_columns_request(rows)["instances"]
    assert list(by_column) == list(rows.columns)
    assert by_row == [{name: by_column[name][i] for name in by_column} for i in range(len(rows))]


def test_records_are_json_ready():
    frame = pd.DataFrame(
        {
            "b": pd.array([1, None], dtype="Int64"),
            "a": np.array([np.float32(0.5), np.nan], dtype="float32"),
            "c": pd.Categorical(["x", None]),
            "d": pd.Series([np.int64(7), None], dtype=object),
        }
    )
    records = records_from_frame(frame)
    assert records == [{"b": 1, "a": 0.5, "c": "x", "d": 7}, {"b": None, "a": None, "c": None, "d": None}]
    assert [type(v) for v in records[0].values()] == [int, float, str, int]
    assert list(records[0]) == ["b", "a", "c", "d"]  # column order
    json.dumps(records, allow_nan=False)


@pytest.mark.parametrize(
    ("values", "datatype"),
    [
        (np.array([1.5], dtype="float32"), "FP64"),
        (np.array([1], dtype="int8"), "INT64"),
        (np.array([1], dtype="uint64"), "INT64"),
        (np.array([True]), "BOOL"),
        (np.array(["a"], dtype=object), "BYTES"),
        (np.array([None, None], dtype=object), "BYTES"),
        (pd.Series([True, None, np.nan], dtype=object), "BOOL"),
        (pd.Series([True, "yes"], dtype=object), "BYTES"),
        (pd.Series([1, None], dtype="Int64"), "INT64"),
        (pd.Series([True, None], dtype="boolean"), "BOOL"),
        (pd.Series(["a", "b"], dtype="category"), "BYTES"),
    ],
    ids=lambda v: v if isinstance(v, str) else str(getattr(v, "dtype", "")),
)
def test_the_v2_datatype_of_an_array(values, datatype):
    assert v2_datatype(values) == datatype


def test_a_text_tensor_sends_text_and_null():
    tensor = v2_input(7, pd.Series(pd.Categorical([1, None, 3])))
    assert tensor == {"name": "7", "shape": [3], "datatype": "BYTES", "data": ["1", None, "3"]}


def test_every_kind_sends_a_datatype_it_accepts():
    for kind, datatype in V2_DATATYPE_OF_KIND.items():
        assert datatype in V2_DATATYPES_OF_KIND[kind]
    assert is_column_shape([3]) and is_column_shape([3, 1])
    assert not is_column_shape([3, 2]) and not is_column_shape([]) and not is_column_shape([1, 1, 1])


def test_the_committed_e2e_requests_are_the_contracts():
    """serving/examples/ames-v2.json is the V2 request the contract builds from the row in ames-v1.json."""
    v1 = json.loads((ROOT / "serving" / "examples" / "ames-v1.json").read_text())
    v2 = json.loads((ROOT / "serving" / "examples" / "ames-v2.json").read_text())
    frame = pd.DataFrame(v1["instances"])
    assert v1_request(frame) == v1
    assert v2_request(frame) == v2


def test_paths():
    assert v1_predict_path("ames") == "/v1/models/ames:predict"
    assert v2_infer_path("ames") == "/v2/models/ames/infer"
    assert v2_ready_path("ames") == "/v2/models/ames/ready"
    assert infer_url("http://predictor:8080/", "ames") == "http://predictor:8080/v2/models/ames/infer"


def predictor():
    """The project's predictor, its answers made without a loaded model (a classifier of two labels)."""
    from serving.predictor import TabularModel

    model = TabularModel("houses", "models:/houses/1", model_version="4")
    model.class_keys = ["cheap", "dear"]
    return model


def test_the_predictors_answers_read_back():
    from serving.predictor import Scored

    scored = Scored(np.array(["dear", "cheap"], dtype=object), np.array([[0.25, 0.75], [0.875, 0.125]]))
    model = predictor()
    v2 = parse_answer(orjson.dumps(model._response(scored, "v2", "r1")))
    assert answer_predictions(v2) == ["dear", "cheap"]
    assert prediction_output(v2)["datatype"] == "BYTES"
    assert [o["name"] for o in v2["outputs"]] == ["prediction", "probability_cheap", "probability_dear"]
    assert v2["outputs"][1]["data"] == [0.25, 0.875] and v2["id"] == "r1"
    assert answered_version(orjson.dumps(v2)) == "4"
    v1 = parse_answer(orjson.dumps(model._response(scored, "v1", None)))
    assert answer_predictions(v1) == ["dear", "cheap"] and answered_version(orjson.dumps(v1)) is None


def test_the_prediction_tensor_is_found_by_name():
    answer = {"outputs": [v2_output("probability_x", np.array([0.5])), v2_output("prediction", np.array([2]))]}
    assert prediction_output(answer)["name"] == "prediction" and answer_predictions(answer) == [2]
    other = {"outputs": [v2_output("output-0", np.array([1.5, 2.5]))]}  # another server's naming: the first
    assert answer_predictions(other) == [1.5, 2.5]


@pytest.mark.parametrize(
    "text",
    ["not json", "[1, 2]", '{"outputs": []}', '{"outputs": [{"name": "prediction"}]}', '{"predictions": 3}', "{}"],
)
def test_what_is_not_an_answer_says_so(text):
    with pytest.raises(AnswerError):
        answer_predictions(parse_answer(text))


def test_the_version_of_an_error_answer():
    assert answered_version('{"error": "x", "field": "body", "model_version": "7"}') == "7"
    assert answered_version("<html>bad gateway</html>") is None
    assert answered_version("[]") is None


def test_a_request_id_round_trips():
    body = v2_request(client_rows()) | {"id": "abc"}
    assert rows_from_v2_typed(orjson.dumps(body), TypedDecoders(SCHEMA), 10)[1].id == "abc"
    assert request_id(body) == "abc"
