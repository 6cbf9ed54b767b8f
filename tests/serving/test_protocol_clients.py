"""The predictor as the Open Inference Protocol's own clients see it: Triton's (`tritonclient` over
HTTP with JSON and with binary data, and over gRPC) and KServe's (`InferenceRESTClient`,
`InferenceGRPCClient`), on the Ames regressor and the Telco classifier, each served as a real
process with `--model-version`. Every answer must equal the in-process prediction exactly."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from dataclasses import dataclass

import grpc
import httpx
import mlflow.sklearn
import numpy as np
import pandas as pd
import pytest
import tritonclient.http as triton_http
from kserve import InferenceGRPCClient, InferenceRESTClient, InferInput, InferRequest, RESTConfig
from tritonclient.utils import InferenceServerException

from tests.conftest import ROOT
from tests.serving.conftest import Server, start_server, stop_server

pytestmark = pytest.mark.pipeline


@dataclass
class Case:
    server: Server
    version: str
    rows: pd.DataFrame  # complete rows (a BYTES tensor has no null), as a client has them
    expected: dict[str, np.ndarray]  # in-process answers, by output name
    inputs: list[dict]  # the model metadata's inputs: name, datatype, shape

    @property
    def name(self) -> str:
        return self.server.name

    @property
    def http_address(self) -> str:
        return self.server.url.removeprefix("http://")

    @property
    def grpc_address(self) -> str:
        return f"127.0.0.1:{self.server.predictor.grpc_port}"


def in_process(model, rows: pd.DataFrame) -> dict[str, np.ndarray]:
    expected = {"prediction": np.asarray(model.predict(rows))}
    if hasattr(model, "predict_proba"):
        for i, label in enumerate(model.classes_):
            expected[f"probability_{label}"] = model.predict_proba(rows)[:, i]
    return expected


@pytest.fixture(scope="module", params=["ames", "telco"])
def case(request, tmp_path_factory) -> Case:
    served = request.getfixturevalue(f"{request.param}_model")
    raw = request.getfixturevalue(f"{request.param}_raw")
    rows = raw.drop(columns=[served.target]).dropna().head(20).reset_index(drop=True)
    server = start_server(
        served.uri,
        request.param,
        tmp_path_factory.mktemp("logs") / f"{request.param}.log",
        "--model-version",
        served.version,
    )
    metadata = httpx.get(f"{server.url}/v2/models/{request.param}", timeout=10).json()
    yield Case(
        server, served.version, rows, in_process(mlflow.sklearn.load_model(served.uri), rows), metadata["inputs"]
    )
    stop_server(server)


def column(rows: pd.DataFrame, name: str, datatype: str) -> np.ndarray:
    """A column as the numpy array a client sends for the metadata's datatype."""
    if datatype == "BYTES":
        return np.array([str(v).encode() for v in rows[name]], dtype=object)
    return rows[name].to_numpy({"FP64": np.float64, "INT64": np.int64, "BOOL": np.bool_}[datatype])


def triton_inputs(module, case: Case, rows: pd.DataFrame, **binary) -> list:
    inputs = []
    for spec in case.inputs:
        tensor = module.InferInput(spec["name"], [len(rows)], spec["datatype"])
        tensor.set_data_from_numpy(column(rows, spec["name"], spec["datatype"]), **binary)
        inputs.append(tensor)
    return inputs


def kserve_request(case: Case, rows: pd.DataFrame, model_name: str | None = None) -> InferRequest:
    inputs = []
    for spec in case.inputs:
        tensor = InferInput(spec["name"], [len(rows)], spec["datatype"])
        tensor.set_data_from_numpy(column(rows, spec["name"], spec["datatype"]), binary_data=True)
        inputs.append(tensor)
    return InferRequest(model_name or case.name, inputs, request_id="req-7")


def assert_answers(case: Case, as_numpy, names: list[str] | None = None) -> None:
    for name in names or case.expected:
        got = as_numpy(name)
        assert got is not None, f"no output {name}"
        if got.dtype == object:
            got = np.array([v.decode() if isinstance(v, bytes) else v for v in got], dtype=object)
        np.testing.assert_array_equal(got, case.expected[name], err_msg=name)


# ---------------------------------------------------------------- Triton's client


def test_triton_http_health_and_metadata(case):
    client = triton_http.InferenceServerClient(case.http_address)
    assert client.is_server_live() and client.is_server_ready()
    assert client.is_model_ready(case.name) and client.is_model_ready(case.name, case.version)
    metadata = client.get_model_metadata(case.name)
    assert metadata["name"] == case.name
    assert [o["name"] for o in metadata["outputs"]] == list(case.expected)
    assert client.get_model_metadata(case.name, case.version)["versions"] == [case.version]


@pytest.mark.parametrize("binary", [False, True], ids=["json", "binary"])
def test_triton_http_infer(case, binary):
    client = triton_http.InferenceServerClient(case.http_address)
    outputs = None if binary else [triton_http.InferRequestedOutput(n, binary_data=False) for n in case.expected]
    result = client.infer(case.name, triton_inputs(triton_http, case, case.rows, binary_data=binary), outputs=outputs)
    assert_answers(case, result.as_numpy)
    assert result.get_response()["model_version"] == case.version


def test_triton_http_one_requested_output_by_version(case):
    client = triton_http.InferenceServerClient(case.http_address)
    result = client.infer(
        case.name,
        triton_inputs(triton_http, case, case.rows),
        model_version=case.version,
        outputs=[triton_http.InferRequestedOutput("prediction")],
    )
    assert [o["name"] for o in result.get_response()["outputs"]] == ["prediction"]
    assert_answers(case, result.as_numpy, ["prediction"])


def test_triton_http_binary_narrow_types(case, request):
    """Number columns sent as INT32 where every value is whole, else FP32: the answer is the in-process
    prediction on the values those types carry."""
    rows = case.rows.copy()
    inputs = []
    for spec in case.inputs:
        values = column(rows, spec["name"], spec["datatype"])
        datatype = spec["datatype"]
        if datatype == "FP64":
            whole = bool(np.all(np.mod(values, 1) == 0)) and np.abs(values).max() < 2**31
            values, datatype = (values.astype(np.int32), "INT32") if whole else (values.astype(np.float32), "FP32")
            rows[spec["name"]] = values.astype(np.float64)
        elif datatype == "INT64":
            values, datatype = values.astype(np.int32), "INT32"
        tensor = triton_http.InferInput(spec["name"], [len(values)], datatype)
        tensor.set_data_from_numpy(values, binary_data=True)
        inputs.append(tensor)
    sent = {i.datatype() for i in inputs}
    assert {"INT32", "BYTES"} <= sent, sent
    model = mlflow.sklearn.load_model(request.getfixturevalue(f"{case.name}_model").uri)
    result = triton_http.InferenceServerClient(case.http_address).infer(case.name, inputs)
    assert_answers(Case(case.server, case.version, rows, in_process(model, rows), case.inputs), result.as_numpy)


def triton_grpc(case: Case, rows: pd.DataFrame, wrong: str | None = None) -> dict:
    """Triton's gRPC client's answers, from a process of its own (tests/serving/triton_grpc_calls.py)."""
    calls = {
        "address": case.grpc_address,
        "model": case.name,
        "request_id": "r-1",
        "inputs": [
            {"name": s["name"], "datatype": s["datatype"], "data": column(rows, s["name"], s["datatype"]).tolist()}
            for s in case.inputs
        ],
        "wrong": wrong,
    }
    for spec in calls["inputs"]:
        if spec["datatype"] == "BYTES":
            spec["data"] = [v.decode() for v in spec["data"]]
    done = subprocess.run(
        [sys.executable, "-m", "tests.serving.triton_grpc_calls"],
        input=json.dumps(calls),
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout)


def test_triton_grpc_health_metadata_and_infer(case):
    answers = triton_grpc(case, case.rows)
    assert answers["live"] and answers["ready"] and answers["model_ready"]
    assert [i["name"] for i in answers["metadata"]["inputs"]] == [i["name"] for i in case.inputs]
    assert answers["metadata"]["versions"] == [case.version]
    assert answers["response"] == {"id": "r-1", "model_version": case.version}
    assert_answers(case, lambda name: np.array(answers["outputs"][name], dtype=case.expected[name].dtype))


# ---------------------------------------------------------------- KServe's clients


def test_kserve_rest_client_binary_infer(case):
    async def call():
        client = InferenceRESTClient(RESTConfig(protocol="v2", timeout=30))
        try:
            assert await client.is_server_ready(case.server.url)
            assert await client.is_model_ready(case.server.url, case.name)
            return await client.infer(case.server.url, kserve_request(case, case.rows), model_name=case.name)
        finally:
            await client.close()

    response = asyncio.run(call())
    assert response.id == "req-7"  # (KServe's REST client does not read model_version back)
    assert_answers(case, lambda name: response.get_output_by_name(name).as_numpy())


def test_kserve_grpc_client_infer(case):
    async def call():
        async with InferenceGRPCClient(case.grpc_address, timeout=30) as client:
            assert await client.is_server_ready() and await client.is_model_ready(case.name)
            return await client.infer(kserve_request(case, case.rows))

    response = asyncio.run(call())
    assert response.model_version == case.version
    assert_answers(case, lambda name: response.get_output_by_name(name).as_numpy())


# ---------------------------------------------------------------- what a client gets wrong


def test_a_bad_value_is_the_same_message_over_rest_and_grpc(case):
    rows = case.rows.head(2)
    spec = next(s for s in case.inputs if s["datatype"] == "FP64")
    inputs = triton_inputs(triton_http, case, rows, binary_data=True)
    wrong = triton_http.InferInput(spec["name"], [2], "BYTES")
    wrong.set_data_from_numpy(np.array([b"a", b"a"], dtype=object))
    inputs = [wrong if i.name() == spec["name"] else i for i in inputs]
    with pytest.raises(InferenceServerException) as rest:
        triton_http.InferenceServerClient(case.http_address).infer(case.name, inputs)
    assert rest.value.status() == "400"
    assert spec["name"] in rest.value.message() and "got BYTES" in rest.value.message()

    refused = triton_grpc(case, rows, wrong=spec["name"])["refused"]
    assert refused == {"status": "StatusCode.INVALID_ARGUMENT", "message": rest.value.message()}


def test_another_version_is_a_404_naming_the_served_one(case):
    other = str(int(case.version) + 1)
    response = httpx.post(
        f"{case.server.url}/v2/models/{case.name}/versions/{other}/infer", json={"inputs": []}, timeout=10
    )
    assert response.status_code == 404, response.text
    assert f"serves version {case.version}, not version {other}" in response.json()["error"]
    assert httpx.get(f"{case.server.url}/v2/models/{case.name}/versions/{other}/ready", timeout=10).status_code == 404

    async def call():
        async with InferenceGRPCClient(case.grpc_address, timeout=30) as client:
            request = kserve_request(case, case.rows.head(1))
            request.model_version = other
            return await client.infer(request)

    with pytest.raises(grpc.aio.AioRpcError) as refused:
        asyncio.run(call())
    assert refused.value.code() == grpc.StatusCode.NOT_FOUND
    assert f"serves version {case.version}" in refused.value.details()


def test_an_unknown_requested_output_is_a_400(case):
    client = triton_http.InferenceServerClient(case.http_address)
    with pytest.raises(InferenceServerException) as refused:
        client.infer(
            case.name,
            triton_inputs(triton_http, case, case.rows.head(1)),
            outputs=[triton_http.InferRequestedOutput("x")],
        )
    assert refused.value.status() == "400" and "unknown output 'x'" in refused.value.message()
