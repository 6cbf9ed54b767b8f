"""The predictor's own predict routes on KServe's FastAPI app: matched before KServe's generic ones,
JSON only, and KServe's per-request timing left out unless its log lines are on."""

import logging
import sys

import pytest
from fastapi import FastAPI
from starlette.requests import ClientDisconnect, Request
from starlette.testclient import TestClient
from timing_asgi import TimingClient, TimingMiddleware

from serving.errors import ClientErrorFilter, RequestError, RouteNotOffered
from serving.limits import RequestLimits
from serving.routes import build_guarded_stack, install_routes


class EchoModel:
    """Stands in for TabularModel: answers with what the route handed it."""

    name = "houses"
    model_version = None
    limits = RequestLimits(max_body_bytes=100)

    async def __call__(self, body, headers):
        return {"protocol": body.protocol, "bytes": len(body.data)}, {}


class Silent(TimingClient):
    def timing(self, metric_name, timing, tags):
        pass


def app_with_kserve_routes() -> FastAPI:
    app = FastAPI()
    install_routes(app, EchoModel())

    # What KServe adds after the model is loaded: its generic routes and its timing middleware.
    @app.post("/v1/models/{name}:predict")
    async def generic(name: str, request: Request):
        await request.body()  # as KServe's V1 route reads it
        return {"generic": name}

    app.add_middleware(TimingMiddleware, client=Silent(), metric_namer=lambda scope: "x")
    return app


def test_the_models_routes_come_before_kserves():
    client = TestClient(app_with_kserve_routes())
    headers = {"Content-Type": "application/json"}
    assert client.post("/v1/models/houses:predict", content=b"{}", headers=headers).json() == {
        "protocol": "v1",
        "bytes": 2,
    }
    assert client.post("/v2/models/houses/infer", content=b"[1]", headers=headers).json() == {
        "protocol": "v2",
        "bytes": 3,
    }
    assert client.post("/v1/models/other:predict", content=b"{}", headers=headers).json() == {"generic": "other"}


@pytest.mark.parametrize("path", ["/v1/models/houses:predict", "/v2/models/houses/infer"])
def test_a_declared_content_type_other_than_json_is_a_415_naming_the_header(path):
    client = TestClient(app_with_kserve_routes())
    response = client.post(path, content=b"{}", headers={"Content-Type": "text/plain"})
    assert response.status_code == 415
    assert response.json()["field"] == "Content-Type" and "got text/plain" in response.json()["problem"]


@pytest.mark.parametrize("path", ["/v1/models/houses:predict", "/v2/models/houses/infer"])
def test_a_body_without_a_content_type_is_read_as_json(path):
    # Triton's client (tritonclient) sends JSON inference requests with no Content-Type header.
    client = TestClient(app_with_kserve_routes())
    response = client.post(path, content=b"{}")
    assert response.status_code == 200 and response.json()["bytes"] == 2


@pytest.mark.parametrize(("level", "kept"), [(logging.WARNING, False), (logging.INFO, True)])
def test_kserves_request_timing_only_when_its_log_lines_are_on(level, kept):
    trace = logging.getLogger("kserve.trace")
    before = trace.level
    trace.setLevel(level)
    try:
        app = FastAPI()
        app.add_middleware(TimingMiddleware, client=Silent(), metric_namer=lambda scope: "x")
        build_guarded_stack(app, 100)
        stack, layers = app.build_middleware_stack(), []
        while stack is not None:
            layers.append(type(stack))
            stack = getattr(stack, "app", None)
        assert (TimingMiddleware in layers) is kept
    finally:
        trace.setLevel(before)


@pytest.mark.parametrize(
    "error, dropped",
    [
        (RouteNotOffered("no :explain"), True),
        (RequestError("body", "is not valid JSON"), True),
        (ClientDisconnect(), True),
        (NotImplementedError("a server bug"), False),
        (ValueError("a server bug"), False),
    ],
)
def test_only_client_mistakes_lose_their_traceback(error, dropped):
    try:
        raise error
    except Exception:
        record = logging.LogRecord("kserve", logging.ERROR, __file__, 1, "failed", None, sys.exc_info())
    assert ClientErrorFilter().filter(record) is not dropped


def test_bodies_over_the_limit_are_413_on_every_route_declared_or_chunked():
    """The limit (100 bytes here) is in front of the model's routes and KServe's generic ones alike;
    a chunked body (no Content-Length) is counted as it is read."""
    client = TestClient(app_with_kserve_routes())
    headers = {"Content-Type": "application/json"}

    def chunked(size):
        yield b"[" + b" " * (size - 2)
        yield b"]"

    for path in ("/v1/models/houses:predict", "/v2/models/houses/infer", "/v1/models/other:predict"):
        for body in (b"[" + b" " * 99 + b"]", chunked(101)):
            response = client.post(path, content=body, headers=headers)
            assert response.status_code == 413, (path, response.text)
            assert response.json()["field"] == "body"
            assert response.json()["problem"] == "is larger than the limit of 100 bytes"
    for body in (b"[" + b" " * 98 + b"]", chunked(100)):
        assert client.post("/v1/models/houses:predict", content=body, headers=headers).json() == {
            "protocol": "v1",
            "bytes": 100,
        }
