"""The model's predict routes, served on KServe's app ahead of KServe's own for the model's name.

KServe's generic routes spend more on a one-row request of a 73-column table than the model's own
call does: its V2 route parses the body with the standard library's JSON, validates it with
pydantic and builds InferRequest/InferResponse objects, and its timing middleware asks the kernel
for the process's CPU time twice per request for log lines that are off by default. These routes
decode the body straight into typed columns checked against the signature (serving.decoding) and
answer with orjson, through the same `Model.__call__` (so KServe's Prometheus histograms still
count every request). The URLs, request bodies and responses are KServe's V1 and Open Inference
Protocol ones; health, readiness, metadata and /metrics stay KServe's.
Every route, KServe's included, sits behind the body limit (serving.limits.BodyLimit).
"""

from __future__ import annotations

import logging

import orjson
from starlette.requests import Request
from starlette.responses import Response

from lifecycle.contract.protocol import v1_predict_path, v2_infer_path
from serving.body import Body
from serving.errors import RequestError, install_error_handler
from serving.limits import BodyLimit

JSON_CONTENT_TYPES = ("application/json", "application/cloudevents+json", "application/ld+json")


def install_routes(app, model) -> None:
    """Adds `model`'s V1 and V2 predict routes to KServe's FastAPI app. Call it before KServe's
    server adds its own routes (they are matched in the order they were added)."""
    install_error_handler(app, model.model_version)
    build_guarded_stack(app, model.limits.max_body_bytes, model.model_version)

    def route(protocol: str):
        async def endpoint(request: Request) -> Response:
            content_type = request.headers.get("content-type", "")
            if content_type.split(";", 1)[0].strip().lower() not in JSON_CONTENT_TYPES:
                raise RequestError(
                    "Content-Type", f"expected application/json, got {content_type or 'no Content-Type header'}"
                )
            answer, _ = await model(Body(protocol, await request.body()), dict(request.headers))
            return Response(orjson.dumps(answer), media_type="application/json")

        return endpoint

    app.add_route(v1_predict_path(model.name), route("v1"), methods=["POST"], include_in_schema=False)
    app.add_route(v2_infer_path(model.name), route("v2"), methods=["POST"], include_in_schema=False)


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
