"""Malformed requests, generated: whatever a client sends, the answer is never a 5xx and the server
stays live and ready."""

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.serving.conftest import records, v2_tensors

pytestmark = pytest.mark.pipeline

json_scalars = (
    st.none()
    | st.booleans()
    | st.integers(-(2**70), 2**70)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=8)
)
json_values = st.recursive(
    json_scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=12,
)
FUZZ = settings(
    max_examples=120, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow]
)


@pytest.fixture(scope="module")
def valid(ames_rows):
    rows = ames_rows.head(2)
    return {"record": records(rows)[0], "tensors": v2_tensors(rows)}


def assert_not_a_server_error(response: httpx.Response) -> None:
    assert response.status_code < 500, (response.status_code, response.text[:500])
    if response.status_code >= 400:
        assert response.headers["content-type"].startswith("application/json"), response.text[:200]


@FUZZ
@given(body=json_values)
def test_any_json_body(ames_server, body):
    assert_not_a_server_error(ames_server.predict_v1(body))
    assert_not_a_server_error(ames_server.infer_v2(body))


@FUZZ
@given(data=st.data())
def test_a_valid_row_with_fields_broken(ames_server, valid, data):
    row = dict(valid["record"])
    for name in data.draw(st.lists(st.sampled_from(sorted(row)), max_size=3, unique=True)):
        action = data.draw(st.sampled_from(["drop", "replace"]))
        if action == "drop":
            del row[name]
        else:
            row[name] = data.draw(json_values)
    for extra in data.draw(st.lists(st.text(max_size=6), max_size=2)):
        row[extra] = data.draw(json_scalars)
    key = data.draw(st.sampled_from(["instances", "inputs"]))
    assert_not_a_server_error(ames_server.predict_v1({key: [row]}))


@FUZZ
@given(data=st.data())
def test_valid_v2_tensors_with_fields_broken(ames_server, valid, data):
    tensors = [dict(t) for t in valid["tensors"]]
    for i in data.draw(st.lists(st.integers(0, len(tensors) - 1), max_size=3, unique=True)):
        field = data.draw(st.sampled_from(["name", "shape", "datatype", "data", "parameters"]))
        tensors[i][field] = data.draw(json_values | st.sampled_from(["FP64", "INT64", "BYTES", "BOOL", "FP16"]))
    body = {"inputs": tensors}
    if data.draw(st.booleans()):
        body["parameters"] = {
            "content_type": data.draw(st.sampled_from(["pd", "np", "str", None]) | st.text(max_size=4))
        }
    assert_not_a_server_error(ames_server.infer_v2(body))


@FUZZ
@given(
    body=st.binary(max_size=64),
    content_type=st.sampled_from(["application/json", "text/plain", "application/octet-stream", ""]),
)
def test_any_bytes_with_any_content_type(ames_server, body, content_type):
    headers = {"Content-Type": content_type} if content_type else {}
    for path in ("/v1/models/ames:predict", "/v2/models/ames/infer"):
        response = httpx.post(f"{ames_server.url}{path}", content=body, headers=headers, timeout=30)
        assert response.status_code < 500, (path, body, content_type, response.status_code, response.text[:300])


def test_server_is_live_and_ready_after_the_fuzzing(ames_server, valid):
    assert httpx.get(f"{ames_server.url}/v2/health/live", timeout=10).status_code == 200
    assert ames_server.ready()
    assert ames_server.predict_v1({"instances": [valid["record"]]}).status_code == 200
