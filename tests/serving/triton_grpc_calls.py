"""Triton's gRPC client (`tritonclient.grpc`) against a running predictor, as a process of its own.

tritonclient and KServe both register the protocol's protobuf package (`inference`) under
different file names, and protobuf refuses the second in one process; the tests import KServe.

    python -m tests.serving.triton_grpc_calls < calls.json > answers.json

In: {"address", "model", "request_id", "inputs": [{"name", "datatype", "data"}], "wrong": name or null}.
Out: health, the model metadata, the outputs of one infer (by name, as lists) and, when `wrong`
names an input, the status and message of the same request with that input sent as BYTES.
"""

from __future__ import annotations

import json
import sys

import numpy as np
import tritonclient.grpc as triton_grpc
from tritonclient.utils import InferenceServerException

NUMPY_TYPE = {"FP64": np.float64, "INT64": np.int64, "BOOL": np.bool_, "BYTES": object}


def tensors(specs: list[dict], wrong: str | None = None) -> list:
    inputs = []
    for spec in specs:
        datatype, data = spec["datatype"], spec["data"]
        if spec["name"] == wrong:
            datatype, data = "BYTES", ["a"] * len(data)
        values = np.array([v.encode() for v in data] if datatype == "BYTES" else data, dtype=NUMPY_TYPE[datatype])
        tensor = triton_grpc.InferInput(spec["name"], [len(values)], datatype)
        tensor.set_data_from_numpy(values)
        inputs.append(tensor)
    return inputs


def plain(values: np.ndarray) -> list:
    return [v.decode() if isinstance(v, bytes) else v for v in values.tolist()]


def main() -> int:
    calls = json.load(sys.stdin)
    client = triton_grpc.InferenceServerClient(calls["address"])
    model = calls["model"]
    answers = {
        "live": client.is_server_live(),
        "ready": client.is_server_ready(),
        "model_ready": client.is_model_ready(model),
        "metadata": client.get_model_metadata(model, as_json=True),
    }
    result = client.infer(model, tensors(calls["inputs"]), request_id=calls["request_id"])
    response = result.get_response(as_json=True)
    answers["response"] = {"id": response.get("id"), "model_version": response.get("model_version")}
    answers["outputs"] = {o["name"]: plain(result.as_numpy(o["name"])) for o in response["outputs"]}
    if calls.get("wrong"):
        try:
            client.infer(model, tensors(calls["inputs"], calls["wrong"]))
            answers["refused"] = None
        except InferenceServerException as exc:
            answers["refused"] = {"status": exc.status(), "message": exc.message()}
    json.dump(answers, sys.stdout)
    return 0


if __name__ == "__main__":
    sys.exit(main())
