"""The smoke request: the model's own input example sent to the predictor, one prediction per row back."""

from __future__ import annotations

import json
import math
import time
import urllib.error
import urllib.request

from lifecycle.deploy.errors import SmokeTestError


def _v2_tensor(name: str, column) -> dict:
    """One named 1-D tensor; JSON null for missing values."""
    import pandas as pd

    kind = column.dtype.kind
    if kind == "b":
        datatype = "BOOL"
    elif kind in "iu" or pd.api.types.is_integer_dtype(column.dtype):
        datatype = "INT64"
    elif kind == "f":
        datatype = "FP64"
    else:
        datatype = "BYTES"
    values = []
    for value in column.tolist():
        if value is None or value is pd.NA or (isinstance(value, float) and math.isnan(value)):
            values.append(None)
        elif datatype == "BYTES":
            values.append(str(value))
        else:
            values.append(value)
    return {"name": str(name), "shape": [len(values)], "datatype": datatype, "data": values}


def v2_request(example) -> dict:
    """Open Inference Protocol body with one tensor per column of a DataFrame."""
    return {"inputs": [_v2_tensor(name, example[name]) for name in example.columns]}


def infer_url(base_url: str, model_name: str) -> str:
    return f"{base_url.rstrip('/')}/v2/models/{model_name}/infer"


def _answered_version(text: str) -> str | None:
    """The `model_version` of a JSON answer (this project's predictor puts it in errors too)."""
    try:
        answer = json.loads(text)
    except ValueError:
        return None
    return answer.get("model_version") if isinstance(answer, dict) else None


def smoke_request(url: str, model_name: str, example, timeout: float = 30.0, retry_seconds: float = 0.0) -> dict:
    """Sends `example` (a DataFrame) to a V2 server at `url` and checks one prediction comes back per row.

    Works against any Open Inference Protocol server. Connection errors are retried for
    `retry_seconds` (a Service that just became Ready may take a moment to route). Returns the rows
    sent, the predictions and the `model_version` the server answered with (None when it sent
    none); raises SmokeTestError with the status and body otherwise.
    """
    endpoint = infer_url(url, model_name)
    body = json.dumps(v2_request(example)).encode()
    rows = len(example)
    deadline = time.monotonic() + retry_seconds
    while True:
        request = urllib.request.Request(
            endpoint, data=body, method="POST", headers={"Content-Type": "application/json"}
        )
        try:
            with urllib.request.urlopen(request, timeout=timeout) as response:
                status, text = response.status, response.read().decode("utf-8", "replace")
            break
        except urllib.error.HTTPError as exc:
            status, text = exc.code, exc.read().decode("utf-8", "replace")
            break
        except (urllib.error.URLError, OSError) as exc:
            if time.monotonic() >= deadline:
                raise SmokeTestError(f"smoke request to {endpoint} failed: {getattr(exc, 'reason', exc)}") from exc
            time.sleep(1.0)
    if status != 200:
        raise SmokeTestError(
            f"smoke request to {endpoint} answered HTTP {status}: {text[:1000]}", _answered_version(text)
        )
    try:
        answer = json.loads(text)
        outputs = answer["outputs"]
        output = next((o for o in outputs if o.get("name") == "prediction"), outputs[0])
        predictions = output["data"]
    except (ValueError, KeyError, IndexError, TypeError) as exc:
        raise SmokeTestError(
            f"smoke request to {endpoint} answered HTTP 200 without V2 outputs: {text[:1000]}"
        ) from exc
    if len(predictions) != rows:
        raise SmokeTestError(
            f"smoke request to {endpoint} sent {rows} rows and got {len(predictions)} predictions: {text[:1000]}"
        )
    return {
        "rows": rows,
        "output": output.get("name"),
        "predictions": predictions,
        "model_version": answer.get("model_version"),
    }
