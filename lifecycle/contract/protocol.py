"""The wire shapes of a prediction: KServe's V1 (`{"instances": ...}`) and the Open Inference Protocol (V2).

Everything that builds a request or reads an answer (the predictor, the deploy step's smoke
request, the e2e request files, the serving benchmark, the tests) builds and reads it here, so a
change to a shape is made once. A request is built from a DataFrame: V1 as one object per row or
one array per column, V2 as one named 1-D tensor per column. Missing values go as JSON null.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

# The predictor reads the registered version from this variable and answers with it as
# `model_version`, so a client (the deploy step) can tell which version answered.
MODEL_VERSION_ENV = "MODEL_VERSION"

# The natural V2 datatype of each column kind, and every datatype a kind accepts in a request.
V2_DATATYPE_OF_KIND = {"number": "FP64", "integer": "INT64", "string": "BYTES", "boolean": "BOOL"}
V2_INTEGER_DATATYPES = frozenset({"INT64", "INT32", "INT16", "INT8", "UINT64", "UINT32", "UINT16", "UINT8"})
V2_DATATYPES_OF_KIND = {
    "number": frozenset({"FP64", "FP32"}) | V2_INTEGER_DATATYPES,
    "integer": V2_INTEGER_DATATYPES,
    "string": frozenset({"BYTES"}),
    "boolean": frozenset({"BOOL"}),
}


class AnswerError(ValueError):
    """An answer that is not the V1 or V2 shape a prediction comes back in."""


# ---------------------------------------------------------------- paths


def v1_predict_path(model_name: str) -> str:
    return f"/v1/models/{model_name}:predict"


def v2_infer_path(model_name: str) -> str:
    return f"/v2/models/{model_name}/infer"


def v2_ready_path(model_name: str) -> str:
    return f"/v2/models/{model_name}/ready"


def infer_url(base_url: str, model_name: str) -> str:
    return base_url.rstrip("/") + v2_infer_path(model_name)


# ---------------------------------------------------------------- values


def _is_missing(value: Any) -> bool:
    return value is None or value is pd.NA or (isinstance(value, float) and math.isnan(value))


def _plain(value: Any) -> Any:
    """A JSON-ready value: numpy scalars as Python ones, missing values (NaN, NA, None) as None."""
    if isinstance(value, np.generic):
        value = value.item()
    return None if _is_missing(value) else value


def json_values(column) -> list:
    """A column's (a pandas Series or a 1-D array) values, JSON-ready."""
    return [_plain(v) for v in column.tolist()]


def records_from_frame(frame) -> list[dict]:
    """JSON-ready rows of a frame, one object per row in column order (missing values as null)."""
    names = list(frame.columns)
    columns = [json_values(frame[name]) for name in names]
    return [dict(zip(names, row, strict=True)) for row in zip(*columns, strict=True)]


def _holds_only_flags(values: Sequence) -> bool:
    """Whether values of a generic (object) column are all true/false, missing ones aside; a
    boolean column with a missing value is one (batch scoring gives it that dtype)."""
    seen = False
    for value in values:
        if isinstance(value, (bool, np.bool_)):
            seen = True
        elif not _is_missing(value):
            return False
    return seen


def v2_datatype(values) -> str:
    """The Open Inference Protocol datatype of an array or a Series: FP64, INT64, BOOL, else BYTES."""
    kind = values.dtype.kind
    if kind == "f":
        return "FP64"
    if kind in "iu":
        return "INT64"
    if kind == "b" or (kind == "O" and _holds_only_flags(values)):
        return "BOOL"
    return "BYTES"


# ---------------------------------------------------------------- requests


def v1_request(frame) -> dict:
    """V1 with one object per row: `{"instances": [{column: value, ...}, ...]}`."""
    return {"instances": records_from_frame(frame)}


def v1_columns_request(frame) -> dict:
    """V1 with one array per column, the compact layout for many rows: `{"instances": {column: [...]}}`."""
    return {"instances": {name: json_values(frame[name]) for name in frame.columns}}


def v2_input(name: str, column) -> dict:
    """One named 1-D tensor of a column; text values as text, missing ones as null."""
    datatype = v2_datatype(column)
    data = json_values(column)
    if datatype == "BYTES":
        data = [v if v is None else str(v) for v in data]
    return {"name": str(name), "shape": [len(data)], "datatype": datatype, "data": data}


def v2_request(frame, parameters: dict | None = None) -> dict:
    """An Open Inference Protocol request with one tensor per column of a DataFrame. `parameters`
    (e.g. `{"content_type": "pd"}`, which servers read as a pandas frame) are sent when given."""
    body: dict[str, Any] = {"inputs": [v2_input(name, frame[name]) for name in frame.columns]}
    if parameters is not None:
        body["parameters"] = parameters
    return body


def is_column_shape(shape: list) -> bool:
    """A V2 tensor holds one table column: shape [rows], or [rows, 1]."""
    return len(shape) == 1 or (len(shape) == 2 and shape[1] == 1)


# ---------------------------------------------------------------- answers


def v2_output(name: str, values: np.ndarray) -> dict:
    """One output tensor of a V2 answer."""
    return {
        "name": name,
        "shape": [len(values)],
        "datatype": v2_datatype(values),
        "parameters": None,
        "data": values.tolist(),
    }


def parse_answer(text: str | bytes) -> dict:
    """A JSON answer as an object; AnswerError for anything else."""
    try:
        answer = json.loads(text)
    except ValueError as exc:
        raise AnswerError(f"the answer is not JSON: {exc}") from None
    if not isinstance(answer, dict):
        raise AnswerError(f"the answer is not a JSON object but {type(answer).__name__}")
    return answer


def prediction_output(answer: dict) -> dict:
    """The V2 output tensor named `prediction` (this project's predictor), else the first one."""
    outputs = answer.get("outputs")
    if not isinstance(outputs, list) or not outputs or not all(isinstance(o, dict) for o in outputs):
        raise AnswerError("the answer has no V2 outputs")
    output = next((o for o in outputs if o.get("name") == "prediction"), outputs[0])
    if not isinstance(output.get("data"), list):
        raise AnswerError(f"the V2 output {output.get('name')!r} has no data array")
    return output


def answer_predictions(answer: dict) -> list:
    """One prediction per row: a V2 answer's prediction tensor, or a V1 answer's `predictions`."""
    if "outputs" in answer:
        return prediction_output(answer)["data"]
    predictions = answer.get("predictions")
    if not isinstance(predictions, list):
        raise AnswerError("the answer has neither V2 outputs nor V1 predictions")
    return predictions


def answered_version(text: str | bytes) -> str | None:
    """The `model_version` of a JSON answer (this project's predictor puts it in errors too); None without one."""
    try:
        return parse_answer(text).get("model_version")
    except AnswerError:
        return None
