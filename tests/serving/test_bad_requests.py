"""A client's mistake is a 400 with a JSON error naming the field and the problem; never a 500,
and the server stays up."""

import json

import httpx
import pytest

from tests.serving.conftest import records, records_by_column, v2_tensors

pytestmark = pytest.mark.pipeline


def one_row(ames_rows) -> dict:
    return records(ames_rows.head(1))[0]


def rejected(response: httpx.Response, field: str, problem: str, status: int = 400) -> None:
    assert response.status_code == status, response.text
    error = response.json()
    assert error["field"] == field, error
    assert problem in error["problem"], error
    assert f"{field}: " in error["error"]


def test_missing_column(ames_server, ames_rows):
    row = one_row(ames_rows)
    del row["Gr_Liv_Area"]
    rejected(ames_server.predict_v1({"instances": [row]}), "instances[0]", "missing column(s): Gr_Liv_Area")


def test_unknown_column(ames_server, ames_rows):
    row = {**one_row(ames_rows), "Bogus_Column": 1}
    rejected(ames_server.predict_v1({"instances": [row]}), "instances[0]", "unknown column(s): Bogus_Column")


def test_wrong_type_names_row_and_column(ames_server, ames_rows):
    rows = records(ames_rows.head(3))
    rows[2]["Lot_Area"] = "large"
    rejected(ames_server.predict_v1({"instances": rows}), "instances[2].Lot_Area", "expected a number")


def test_text_where_a_category_is_expected_is_fine_but_a_number_is_not(ames_server, ames_rows):
    row = one_row(ames_rows)
    row["Neighborhood"] = 12
    rejected(ames_server.predict_v1({"instances": [row]}), "instances[0].Neighborhood", "expected a string")


@pytest.mark.parametrize("body", [{"instances": []}, {"inputs": []}])
def test_empty_batch(ames_server, body):
    key = next(iter(body))
    rejected(ames_server.predict_v1(body), key, "the batch is empty")


def test_batch_over_the_configured_limit(ames_server, ames_rows):
    rows = records(ames_rows.head(1)) * 501  # the fixture serves with --max-request-rows 500
    rejected(ames_server.predict_v1({"instances": rows}), "instances", "more than the limit of 500")


def test_required_column_sent_as_null_in_column_layout(ames_server, ames_rows):
    columns = records_by_column(ames_rows.head(2))
    columns["Lot_Area"] = None
    rejected(ames_server.predict_v1({"instances": columns}), "instances.Lot_Area", "is required and may not be null")


def test_values_the_model_cannot_score_are_422_and_spare_the_rest_of_the_batch(ames_server, ames_rows):
    """Every value fits the signature, but the derived Total_SF (a sum of three areas) overflows to
    infinity, which the model refuses: the client's values, so a 422 naming the rows, not a 500.
    Sent together with good requests, those are still answered."""
    import asyncio

    huge = one_row(ames_rows)
    huge.update(Total_Bsmt_SF=1e308, First_Flr_SF=1e308, Second_Flr_SF=1e308)
    good = {"instances": records(ames_rows.head(3))}
    expected = ames_server.predict_v1(good).json()

    async def send_together():
        async with httpx.AsyncClient(base_url=ames_server.url, timeout=30) as client:
            bodies = [good] * 8 + [{"instances": [huge]}] + [good] * 8
            return await asyncio.gather(*(client.post("/v1/models/ames:predict", json=b) for b in bodies))

    responses = asyncio.run(send_together())
    rejected(responses[8], "instances", "the model cannot score these values: Input X contains infinity", status=422)
    assert all(r.status_code == 200 and r.json() == expected for r in responses[:8] + responses[9:])
    assert ames_server.ready()


@pytest.mark.parametrize("path", ["/v1/models/ames:predict", "/v2/models/ames/infer"])
def test_body_that_is_not_json(ames_server, path):
    response = httpx.post(
        f"{ames_server.url}{path}", content=b'{"instances": [', headers={"Content-Type": "application/json"}, timeout=10
    )
    rejected(response, "body", "is not valid JSON: Input data was truncated")


def test_body_with_a_content_type_that_is_not_json(ames_server, ames_rows):
    body = json.dumps({"instances": [one_row(ames_rows)]}).encode()
    for path in ("/v1/models/ames:predict", "/v2/models/ames/infer"):
        response = httpx.post(
            f"{ames_server.url}{path}", content=body, headers={"Content-Type": "text/plain"}, timeout=10
        )
        assert response.status_code == 415, response.text
        assert response.json()["field"] == "Content-Type" and "got text/plain" in response.json()["problem"]


def test_v1_without_instances(ames_server):
    rejected(ames_server.predict_v1({"rows": []}), "body", "expected key 'instances'")


def test_v2_wrong_datatype(ames_server, ames_rows):
    tensors = v2_tensors(ames_rows.head(2))
    lot = next(t for t in tensors if t["name"] == "Lot_Area")
    lot["datatype"], lot["data"] = "BYTES", ["a", "b"]
    response = ames_server.infer_v2({"inputs": tensors})
    assert response.status_code == 400, response.text
    assert "Lot_Area" in response.json()["field"] and "got BYTES" in response.json()["problem"]


def test_v2_tensors_of_different_lengths(ames_server, ames_rows):
    tensors = v2_tensors(ames_rows.head(3))
    tensors[1]["shape"], tensors[1]["data"] = [2], tensors[1]["data"][:2]
    response = ames_server.infer_v2({"inputs": tensors})
    assert response.status_code == 400, response.text
    assert "other columns have 3" in response.json()["problem"]


def test_v2_missing_column(ames_server, ames_rows):
    tensors = [t for t in v2_tensors(ames_rows.head(2)) if t["name"] != "Year_Built"]
    rejected(ames_server.infer_v2({"inputs": tensors}), "inputs", "missing column(s): Year_Built")


def test_explain_is_not_offered_and_says_so(ames_server, ames_rows):
    response = httpx.post(
        f"{ames_server.url}/v1/models/ames:explain", json={"instances": [one_row(ames_rows)]}, timeout=10
    )
    assert response.status_code == 501, response.text
    assert "answers /v1/models/ames:predict and /v2/models/ames/infer only" in response.json()["error"]


def test_unknown_model_is_404_not_500(ames_server, ames_rows):
    response = httpx.post(
        f"{ames_server.url}/v1/models/nope:predict", json={"instances": [one_row(ames_rows)]}, timeout=10
    )
    assert response.status_code == 404


def test_server_is_still_ready_and_answers(ames_server, ames_rows):
    assert ames_server.ready()
    assert ames_server.predict_v1({"instances": [one_row(ames_rows)]}).status_code == 200
    log = ames_server.output()
    assert "Traceback" not in log, log[max(0, log.find("Traceback") - 1500) :][:4000]


@pytest.mark.parametrize(
    ("breakage", "field", "problem"),
    [
        (lambda body: body.pop("inputs"), "inputs", "expected key 'inputs'"),
        (lambda body: body.update(inputs="Lot_Area"), "inputs", "expected an array of tensors, got string"),
        (lambda body: body["inputs"][0].update(name=5), "inputs[0].name", "expected a string, got integer 5"),
        (lambda body: body["inputs"][1].pop("data"), "inputs[1].data", "expected an array, got nothing"),
        (lambda body: body["inputs"][2].update(shape="2"), "inputs[2].shape", "expected an array, got string '2'"),
        (lambda body: body.update(id=7), "id", "expected a string, got integer 7"),
        (lambda body: body.update(parameters={"content_type": "np"}), "parameters.content_type", "expected 'pd'"),
    ],
    ids=[
        "no-inputs",
        "inputs-not-array",
        "name-not-string",
        "no-data",
        "shape-not-array",
        "id-not-string",
        "content-type",
    ],
)
def test_v2_body_that_breaks_the_protocol(ames_server, ames_rows, breakage, field, problem):
    body = {"id": "req-2", "inputs": v2_tensors(ames_rows.head(2))}
    breakage(body)
    rejected(ames_server.infer_v2(body), field, problem)
