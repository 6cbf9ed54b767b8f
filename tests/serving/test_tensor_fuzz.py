"""Malformed tensor requests, generated, over the binary data extension and over gRPC: a client's
mistake is a 4xx over REST and never INTERNAL (or UNKNOWN) over gRPC, and the server stays ready."""

import json
import struct

import grpc
import httpx
import pytest
from hypothesis import given
from hypothesis import strategies as st
from kserve.protocol.grpc import grpc_predict_v2_pb2 as pb
from kserve.protocol.grpc.grpc_predict_v2_pb2_grpc import GRPCInferenceServiceStub

from tests.serving.test_fuzz import FUZZ, assert_not_a_server_error, json_values

pytestmark = pytest.mark.pipeline

NAMES = st.sampled_from(["Lot_Area", "Year_Built", "Neighborhood", "Alley", "x"]) | st.text(max_size=6)
DATATYPES = st.sampled_from(["FP64", "FP32", "INT64", "INT32", "UINT8", "BYTES", "BOOL", "FP16"]) | st.text(max_size=5)
SHAPES = st.lists(st.integers(-2, 4), max_size=3)
CLIENT_MISTAKE_CODES = {
    grpc.StatusCode.OK,
    grpc.StatusCode.INVALID_ARGUMENT,
    grpc.StatusCode.NOT_FOUND,
    grpc.StatusCode.RESOURCE_EXHAUSTED,
    grpc.StatusCode.UNAVAILABLE,
}


@pytest.fixture(scope="module")
def stub(ames_server):
    channel = grpc.insecure_channel(f"127.0.0.1:{ames_server.predictor.grpc_port}")
    yield GRPCInferenceServiceStub(channel)
    channel.close()


@st.composite
def grpc_tensor(draw) -> pb.ModelInferRequest.InferInputTensor:
    tensor = pb.ModelInferRequest.InferInputTensor(name=draw(NAMES), datatype=draw(DATATYPES), shape=draw(SHAPES))
    contents = draw(
        st.sampled_from(["fp64_contents", "int64_contents", "int_contents", "bytes_contents", "bool_contents", None])
    )
    if contents == "fp64_contents":
        tensor.contents.fp64_contents.extend(draw(st.lists(st.floats(), max_size=4)))
    elif contents in ("int64_contents", "int_contents"):
        bound = 2**63 if contents == "int64_contents" else 2**31
        getattr(tensor.contents, contents).extend(draw(st.lists(st.integers(-bound, bound - 1), max_size=4)))
    elif contents == "bytes_contents":
        tensor.contents.bytes_contents.extend(draw(st.lists(st.binary(max_size=4), max_size=4)))
    elif contents == "bool_contents":
        tensor.contents.bool_contents.extend(draw(st.lists(st.booleans(), max_size=4)))
    return tensor


@FUZZ
@given(
    model_name=st.sampled_from(["ames", "ames", "other"]),
    model_version=st.sampled_from(["", "", "1", "x"]),
    inputs=st.lists(grpc_tensor(), max_size=4),
    raw=st.none() | st.lists(st.binary(max_size=24), max_size=4),
    outputs=st.lists(st.sampled_from(["prediction", "y"]), max_size=2),
)
def test_malformed_grpc_requests_are_never_internal(stub, model_name, model_version, inputs, raw, outputs):
    request = pb.ModelInferRequest(model_name=model_name, model_version=model_version, inputs=inputs)
    if raw is not None:
        request.raw_input_contents.extend(raw)
    request.outputs.extend(pb.ModelInferRequest.InferRequestedOutputTensor(name=n) for n in outputs)
    try:
        stub.ModelInfer(request, timeout=30)
    except grpc.RpcError as exc:
        assert exc.code() in CLIENT_MISTAKE_CODES, (exc.code(), exc.details(), request)
        assert exc.details(), "a refusal says why"


@FUZZ
@given(
    header=json_values
    | st.fixed_dictionaries(
        {
            "inputs": st.lists(
                st.fixed_dictionaries(
                    {"name": NAMES, "datatype": DATATYPES, "shape": SHAPES},
                    optional={"parameters": st.fixed_dictionaries({"binary_data_size": st.integers(-4, 40)})},
                ),
                max_size=3,
            )
        },
        optional={"parameters": st.fixed_dictionaries({"binary_data_output": json_values})},
    ),
    tail=st.binary(max_size=40),
    declared=st.none() | st.integers(-5, 400) | st.text(alphabet="0123456789-x.e", min_size=1, max_size=4),
)
def test_malformed_binary_requests_are_4xx(ames_server, header, tail, declared):
    head = json.dumps(header).encode()
    length = len(head) if declared is None else declared
    response = httpx.post(
        f"{ames_server.url}/v2/models/ames/infer",
        content=head + tail,
        headers={"Inference-Header-Content-Length": str(length)},
        timeout=30,
    )
    assert_not_a_server_error(response)


def test_a_bytes_tensor_that_is_not_utf8_is_named(ames_server, ames_rows):
    body = {
        "inputs": [{"name": "Neighborhood", "datatype": "BYTES", "shape": [1], "parameters": {"binary_data_size": 6}}]
    }
    head = json.dumps(body).encode()
    response = httpx.post(
        f"{ames_server.url}/v2/models/ames/infer",
        content=head + struct.pack("<I", 2) + b"\xff\xfe",
        headers={"Inference-Header-Content-Length": str(len(head))},
        timeout=30,
    )
    assert response.status_code == 400, response.text
    assert response.json()["field"] == "inputs" and "using UTF-8" in response.json()["problem"]


def test_the_server_is_ready_after_the_fuzzing(ames_server, stub):
    assert ames_server.ready()
    assert stub.ServerReady(pb.ServerReadyRequest(), timeout=10).ready
    assert stub.ServerLive(pb.ServerLiveRequest(), timeout=10).live
    rest = httpx.get(f"{ames_server.url}/v2", timeout=10).json()
    grpc_metadata = stub.ServerMetadata(pb.ServerMetadataRequest(), timeout=10)
    assert (grpc_metadata.name, grpc_metadata.version) == (rest["name"], rest["version"])
