"""The model's predict routes, served on KServe's app ahead of KServe's own for the model's name.

KServe's generic routes spend more on a one-row request of a 73-column table than the model's own
call does: its V2 route parses the body with the standard library's JSON, validates it with
pydantic and builds InferRequest/InferResponse objects, and its timing middleware asks the kernel
for the process's CPU time twice per request for log lines that are off by default. These routes
decode the body straight into typed columns checked against the signature (serving.decoding) and
answer with orjson, through the same `Model.__call__` (so KServe's Prometheus histograms still
count every request). The URLs, request bodies and responses are KServe's V1 and Open Inference
Protocol ones; health, readiness, metadata and /metrics stay KServe's, but for the V2 routes of one
version (`/v2/models/NAME/versions/VERSION/...`), which answer for the served version only. A V2
request may come in the binary data extension, or ask for binary outputs (serving.tensors).
Every route, KServe's included, sits behind the body limit (serving.limits.BodyLimit).
"""

from __future__ import annotations

import logging

import orjson
from kserve.protocol.infer_type import InferResponse
from starlette.requests import Request
from starlette.responses import Response

from lifecycle.contract.protocol import v1_predict_path, v2_infer_path
from serving.body import Body
from serving.errors import RequestError, install_error_handler, not_served
from serving.limits import BodyLimit
from serving.tensors import BINARY_HEADER, binary_request

JSON_CONTENT_TYPES = ("application/json", "application/cloudevents+json", "application/ld+json")


def install_routes(app, model) -> None:
    """Adds `model`'s V1 and V2 predict routes, and the V2 routes of the version it serves, to KServe's
    FastAPI app. Call it before KServe's server adds its own routes (they are matched in the order
    they were added)."""
    install_error_handler(app, model.model_version)
    build_guarded_stack(app, model.limits.max_body_bytes, model.model_version)

    def route(protocol: str):
        async def endpoint(request: Request) -> Response:
            return await answer(model, protocol, request)

        return endpoint

    async def versioned(request: Request) -> Response:
        params = request.path_params
        refusal = not_served(params["model_name"], params["model_version"], model.name, model.model_version)
        if refusal:
            raise refusal
        what = params.get("what")
        if what == "infer" and request.method == "POST":
            return await answer(model, "v2", request)
        if what == "ready" and request.method == "GET":
            return Response(orjson.dumps({"name": model.name, "ready": model.ready}), media_type="application/json")
        if what is None and request.method == "GET":
            return Response(orjson.dumps(model_metadata(model)), media_type="application/json")
        raise RequestError("path", f"{request.method} {request.url.path} is not a route of this server", status=404)

    app.add_route(v1_predict_path(model.name), route("v1"), methods=["POST"], include_in_schema=False)
    app.add_route(v2_infer_path(model.name), route("v2"), methods=["POST"], include_in_schema=False)
    base = "/v2/models/{model_name}/versions/{model_version}"
    app.add_route(base, versioned, methods=["GET"], include_in_schema=False)
    app.add_route(base + "/{what}", versioned, methods=["GET", "POST"], include_in_schema=False)


async def answer(model, protocol: str, request: Request) -> Response:
    """Scores one request: JSON (with or without a Content-Type header) or, over V2, the binary data
    extension (`Inference-Header-Content-Length`); any other declared content type is a 415."""
    headers = request.headers
    binary_length = headers.get(BINARY_HEADER) if protocol == "v2" else None
    if binary_length is not None:
        payload = binary_request(await request.body(), binary_length, model.name)
    else:
        content_type = headers.get("content-type")
        if content_type and content_type.split(";", 1)[0].strip().lower() not in JSON_CONTENT_TYPES:
            expected = "application/json" + (" or the binary data extension" if protocol == "v2" else "")
            raise RequestError("Content-Type", f"expected {expected}, got {content_type}", status=415)
        payload = Body(protocol, await request.body())
    result, _ = await model(payload, dict(headers))
    if not isinstance(result, InferResponse):
        return Response(orjson.dumps(result), media_type="application/json")
    body, json_length = result.to_rest()
    if json_length is None:
        return Response(orjson.dumps(body), media_type="application/json")
    return Response(
        body, media_type="application/octet-stream", headers={"Inference-Header-Content-Length": str(json_length)}
    )


def model_metadata(model) -> dict:
    """The V2 model metadata KServe answers, with the served version."""
    return {
        "name": model.name,
        "versions": [model.model_version],
        "platform": "",
        "inputs": model.get_input_types(),
        "outputs": model.get_output_types(),
    }


def build_guarded_stack(app, max_body_bytes: int, model_version: str | None = None) -> None:
    """The app's middleware stack, built when the server starts, gets the body limit outside
    everything else (before Starlette's error middleware, which would answer 500 to what the
    limit ends). KServe's per-request timing middleware is left out unless its log lines are on
    (`--access-log`): it calls getrusage() twice per request, a quarter of the event loop's time
    under load."""
    from timing_asgi import TimingMiddleware

    build = app.build_middleware_stack

    def build_guarded():
        if not logging.getLogger("kserve.trace").isEnabledFor(logging.INFO):
            app.user_middleware = [m for m in app.user_middleware if m.cls is not TimingMiddleware]
        return BodyLimit(build(), max_body_bytes, model_version)

    app.build_middleware_stack = build_guarded
