"""Open Inference Protocol requests and answers as tensors: the REST binary data extension and gRPC.

KServe's `InferRequest` decodes both (`from_bytes`, `from_grpc`). A decoded request becomes here the
V2 body the JSON route takes, so one set of checks (serving.checks) names what is wrong whatever the
wire, and an answer becomes KServe's `InferResponse`, which writes it the way the client asked:
JSON, JSON followed by binary outputs, or a gRPC message.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import msgspec
import numpy as np
from kserve.errors import InferenceError, InvalidInput
from kserve.protocol.infer_type import (
    InferOutput,
    InferRequest,
    InferResponse,
    RequestedOutput,
    to_http_parameters,
)

from lifecycle.contract.protocol import v2_datatype
from serving.checks import json_type, short
from serving.errors import TOO_DEEP, RequestError

BINARY_HEADER = "inference-header-content-length"  # the JSON part's length, in the binary data extension
# Bytes per value of the datatypes a binary input may carry (BYTES is length-prefixed, checked by KServe).
_ITEM_SIZE = {"FP64": 8, "FP32": 4, "INT64": 8, "INT32": 4, "INT16": 2, "INT8": 1, "UINT64": 8, "UINT32": 4}
_ITEM_SIZE |= {"UINT16": 2, "UINT8": 1, "BOOL": 1}
_JSON_HEADER = msgspec.json.Decoder()
_NUMPY_TYPE = {"FP64": np.float64, "INT64": np.int64, "BOOL": np.bool_, "BYTES": object}


@dataclass(frozen=True)
class AnswerForm:
    """The outputs a V2 request asked for (None: all, in the model's order) and whether they go back
    as binary data (`binary_data_output`, or `binary_data` per requested output, as KServe reads them)."""

    outputs: list[RequestedOutput] | None = None
    binary: bool = False
    grpc: bool = False

    @property
    def plain(self) -> bool:
        """Every output, as JSON: the answer the JSON route writes itself."""
        return self.outputs is None and not self.binary and not self.grpc


PLAIN = AnswerForm()


def answer_form(parameters: Any, outputs: Any, output_names: list[str]) -> AnswerForm:
    """The form a V2 body's `parameters` and `outputs` ask for; RequestError names a field that does not fit."""
    binary = False
    if parameters is not None:
        binary = parameters.get("binary_data_output", False)
        if type(binary) is not bool:
            raise RequestError("parameters.binary_data_output", f"expected true or false, got {short(binary)}")
    if outputs is None:
        return AnswerForm(binary=binary) if binary else PLAIN
    if type(outputs) is not list:
        raise RequestError("outputs", f"expected an array of requested outputs, got {json_type(outputs)}")
    requested = []
    for i, output in enumerate(outputs):
        if type(output) is not dict or type(output.get("name")) is not str:
            raise RequestError(f"outputs[{i}]", f"expected an object with a 'name', got {short(output)}")
        if output["name"] not in output_names:
            raise RequestError(
                f"outputs[{i}].name", f"unknown output {output['name']!r}; this model answers {', '.join(output_names)}"
            )
        output_parameters = output.get("parameters")
        if output_parameters is not None and (
            type(output_parameters) is not dict or type(output_parameters.get("binary_data", False)) is not bool
        ):
            raise RequestError(
                f"outputs[{i}].parameters", f"expected {{'binary_data': true|false}}, got {short(output_parameters)}"
            )
        # Triton's rule: an output's own `binary_data` wins, else the request's `binary_data_output`.
        requested.append(RequestedOutput(output["name"], {"binary_data": binary} | (output_parameters or {})))
    return AnswerForm(requested, binary)


def binary_request(data: bytes, header_length: str, model_name: str) -> InferRequest:
    """A REST request in the binary data extension: `header_length` bytes of JSON naming the tensors,
    then each binary input's bytes in the order of `inputs`. Each declared size is checked against
    the bytes that arrived and the tensor's shape before KServe slices the body."""
    try:
        json_length = int(header_length)
    except ValueError:
        raise RequestError(
            "Inference-Header-Content-Length", f"expected a number of bytes, got {short(header_length)}"
        ) from None
    if not 0 < json_length <= len(data):
        raise RequestError("Inference-Header-Content-Length", f"is {json_length}, but the body has {len(data)} bytes")
    try:
        header = _JSON_HEADER.decode(data[:json_length])
    except msgspec.DecodeError as exc:
        raise RequestError("body", f"the JSON part is not valid JSON: {exc}") from None
    except RecursionError:
        raise RequestError("body", TOO_DEEP) from None
    inputs = header.get("inputs") if type(header) is dict else None
    if type(inputs) is not list:
        raise RequestError("inputs", "expected key 'inputs': an array of tensors")
    binary_bytes = len(data) - json_length
    for i, tensor in enumerate(inputs):
        binary_bytes -= _binary_size(tensor, f"inputs[{i}]")
    if binary_bytes != 0:
        more_or_less = "more" if binary_bytes > 0 else "less"
        raise RequestError(
            "body", f"carries {abs(binary_bytes)} bytes {more_or_less} than its inputs' binary_data_size"
        )
    try:
        return InferRequest.from_bytes(data, json_length, model_name)
    except (InvalidInput, InferenceError) as exc:  # e.g. a BYTES value that is not UTF-8
        raise RequestError("inputs", exc.reason) from None
    except (ValueError, TypeError, UnicodeDecodeError) as exc:  # numpy or KServe refusing what the sizes allowed
        raise RequestError("inputs", f"binary data that does not fit its tensor: {exc}") from None


def _binary_size(tensor: Any, where: str) -> int:
    """The bytes a tensor of the JSON part takes after it (0 when its values are in `data`)."""
    if type(tensor) is not dict:
        raise RequestError(where, f"expected a tensor object (name, shape, datatype, data), got {json_type(tensor)}")
    if "data" in tensor:
        return 0
    parameters = tensor.get("parameters")
    size = parameters.get("binary_data_size") if type(parameters) is dict else None
    if type(size) is not int or size < 0:
        raise RequestError(
            f"{where}.parameters.binary_data_size", f"expected a number of bytes (or 'data'), got {short(size)}"
        )
    shape, item = tensor.get("shape"), _ITEM_SIZE.get(tensor.get("datatype"))
    whole = item is not None and type(shape) is list and all(type(s) is int and s >= 0 for s in shape)
    if whole and size != math.prod(shape) * item:
        raise RequestError(
            f"{where}.parameters.binary_data_size",
            f"is {size} bytes; shape {shape} of {tensor['datatype']} takes {math.prod(shape) * item}",
        )
    return size


def v2_body(request: InferRequest) -> dict:
    """The V2 JSON body an InferRequest stands for: each tensor's values as a flat list (text decoded
    from UTF-8, a NaN in a float tensor read as a missing value, as JSON null is)."""
    inputs = []
    for i, tensor in enumerate(request.inputs):
        inputs.append(
            {
                "name": tensor.name,
                "datatype": tensor.datatype,
                "shape": list(tensor.shape),
                "data": _values(tensor, f"inputs[{i}]"),
            }
        )
    body: dict[str, Any] = {"inputs": inputs}
    parameters = _plain_parameters(request.parameters)
    if parameters:
        body["parameters"] = parameters
    if request.id:
        body["id"] = request.id
    return body


def _values(tensor, where: str) -> list:
    try:
        values = tensor.as_numpy().ravel()
    except InvalidInput as exc:
        raise RequestError(f"{where}.datatype", exc.reason) from None
    except (ValueError, TypeError) as exc:
        raise RequestError(f"{where}.shape", f"does not fit its {tensor.datatype} values: {exc}") from None
    if tensor.datatype == "BYTES":
        out = []
        for row, value in enumerate(values.tolist()):
            if isinstance(value, bytes):
                try:
                    value = value.decode("utf-8")
                except UnicodeDecodeError:
                    raise RequestError(f"{where}.data[{row}]", "is not UTF-8 text") from None
            out.append(value)
        return out
    values = values.tolist()
    if tensor.datatype in ("FP64", "FP32", "FP16"):
        return [None if v != v else v for v in values]
    return values


def _plain_parameters(parameters) -> dict | None:
    """Parameters as plain values (gRPC carries them as InferParameter messages)."""
    return to_http_parameters(parameters) if parameters else None


def request_form(request: InferRequest, output_names: list[str]) -> AnswerForm:
    """The answer form of an InferRequest: over REST as its JSON part asks; over gRPC the requested
    outputs, raw when the inputs came raw (KServe's rule)."""
    outputs = None
    if request.request_outputs:
        outputs = [{"name": o.name, "parameters": _plain_parameters(o.parameters)} for o in request.request_outputs]
    if not request.from_grpc:
        return answer_form(request.parameters, outputs, output_names)
    form = answer_form(None, outputs, output_names)
    return AnswerForm(form.outputs, request.use_binary_outputs, grpc=True)


def infer_response(
    outputs: dict[str, np.ndarray], form: AnswerForm, model_name: str, model_version: str | None, response_id: str
) -> InferResponse:
    """The answer as KServe's InferResponse: the requested outputs (all, in the model's order, when
    none were named), written by `to_rest()` or `to_grpc()` in the form asked for."""
    names = [o.name for o in form.outputs] if form.outputs else list(outputs)
    tensors = []
    for name in names:
        datatype = v2_datatype(outputs[name])
        values = np.asarray(outputs[name], dtype=_NUMPY_TYPE[datatype])  # text as objects, as KServe writes BYTES
        tensor = InferOutput(name, [len(values)], datatype, values)
        if form.grpc:  # KServe's to_grpc() takes lists or raw bytes, not arrays
            tensor.set_data_from_numpy(values, binary_data=form.binary)
        tensors.append(tensor)
    return InferResponse(
        response_id,
        model_name,
        tensors,
        model_version=model_version,
        from_grpc=form.grpc,
        use_binary_outputs=form.binary,
        requested_outputs=form.outputs,
    )
