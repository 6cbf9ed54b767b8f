"""The smoke request: the model's own input example sent to the predictor, one prediction per row back."""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request

from lifecycle.contract.protocol import (
    AnswerError,
    answered_version,
    infer_url,
    parse_answer,
    prediction_output,
    v2_request,
)
from lifecycle.deploy.errors import SmokeTestError


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
            f"smoke request to {endpoint} answered HTTP {status}: {text[:1000]}", answered_version(text)
        )
    try:
        answer = parse_answer(text)
        output = prediction_output(answer)
    except AnswerError as exc:
        raise SmokeTestError(
            f"smoke request to {endpoint} answered HTTP 200 without V2 outputs: {text[:1000]}"
        ) from exc
    predictions = output["data"]
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
