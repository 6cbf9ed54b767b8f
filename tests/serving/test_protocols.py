"""V1 and V2 (Open Inference Protocol) over HTTP against real server processes, on the models the
project's `training` pipeline registered: a regression (Ames) and a classification (Telco churn)."""

import httpx
import mlflow.sklearn
import numpy as np
import pytest

from tests.serving.conftest import records, records_by_column, v2_tensors

pytestmark = pytest.mark.pipeline


@pytest.fixture(scope="module")
def ames_local(ames_model):
    return mlflow.sklearn.load_model(ames_model.uri)


@pytest.fixture(scope="module")
def telco_local(telco_model):
    return mlflow.sklearn.load_model(telco_model.uri)


def test_v1_records_give_the_models_predictions(ames_server, ames_rows, ames_local):
    rows = ames_rows.head(20)
    response = ames_server.predict_v1({"instances": records(rows)})
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("application/json")
    np.testing.assert_allclose(response.json()["predictions"], ames_local.predict(rows), rtol=1e-12)


@pytest.mark.parametrize("key", ["instances", "inputs"])
def test_v1_columns_object_equals_records(ames_server, ames_rows, key):
    rows = ames_rows.head(7)
    by_records = ames_server.predict_v1({key: records(rows)}).json()["predictions"]
    by_columns = ames_server.predict_v1({key: records_by_column(rows)})
    assert by_columns.status_code == 200, by_columns.text
    assert by_columns.json()["predictions"] == by_records


@pytest.mark.parametrize("parameters", [None, {"content_type": "pd"}], ids=["tensors", "pd"])
def test_v2_one_tensor_per_column(ames_server, ames_rows, ames_local, parameters):
    rows = ames_rows.head(11)
    body = {"id": "req-1", "inputs": v2_tensors(rows)}
    if parameters:
        body["parameters"] = parameters
    response = ames_server.infer_v2(body)
    assert response.status_code == 200, response.text
    answer = response.json()
    assert answer["id"] == "req-1" and answer["model_name"] == "ames"
    (output,) = answer["outputs"]
    assert (output["name"], output["shape"], output["datatype"]) == ("prediction", [11], "FP64")
    np.testing.assert_allclose(output["data"], ames_local.predict(rows), rtol=1e-12)


def test_v1_classification_gives_labels_and_class_probabilities(telco_server, telco_rows, telco_local):
    rows = telco_rows.head(25)
    response = telco_server.predict_v1({"instances": records(rows)})
    assert response.status_code == 200, response.text
    answer = response.json()
    assert answer["predictions"] == telco_local.predict(rows).tolist()
    classes = [str(c) for c in telco_local.classes_]
    assert all(list(p) == classes for p in answer["probabilities"])
    proba = np.array([[p[c] for c in classes] for p in answer["probabilities"]])
    np.testing.assert_allclose(proba, telco_local.predict_proba(rows), rtol=1e-12)


def test_v2_classification_gives_labels_and_a_tensor_per_class(telco_server, telco_rows, telco_local):
    rows = telco_rows.head(9)
    response = telco_server.infer_v2({"inputs": v2_tensors(rows), "parameters": {"content_type": "pd"}})
    assert response.status_code == 200, response.text
    outputs = {o["name"]: o for o in response.json()["outputs"]}
    classes = [str(c) for c in telco_local.classes_]
    assert list(outputs) == ["prediction", *(f"probability_{c}" for c in classes)]
    assert outputs["prediction"]["datatype"] == "BYTES"
    assert outputs["prediction"]["data"] == telco_local.predict(rows).tolist()
    proba = telco_local.predict_proba(rows)
    for i, label in enumerate(classes):
        np.testing.assert_allclose(outputs[f"probability_{label}"]["data"], proba[:, i], rtol=1e-12)


def test_metadata_health_and_metrics(ames_server, ames_rows):
    metadata = httpx.get(f"{ames_server.url}/v2/models/ames", timeout=10).json()
    assert {i["name"] for i in metadata["inputs"]} == set(ames_rows.columns)
    assert metadata["outputs"] == [{"name": "prediction", "datatype": "FP64", "shape": [-1]}]
    assert httpx.get(f"{ames_server.url}/v2/health/live", timeout=10).status_code == 200
    assert httpx.get(f"{ames_server.url}/v1/models/ames", timeout=10).json() == {"name": "ames", "ready": True}
    metrics = httpx.get(f"{ames_server.url}/metrics", timeout=10)
    assert metrics.status_code == 200 and "# TYPE" in metrics.text


def test_concurrent_requests_each_get_their_own_rows(ames_server, ames_rows, ames_local):
    """Dynamic batching merges concurrent requests into one model call: each answer must still be its own."""
    import asyncio

    rows = ames_rows.head(64)
    expected = ames_local.predict(rows)
    bodies = [{"instances": records(rows.iloc[[i]])} for i in range(len(rows))]

    async def send_all():
        async with httpx.AsyncClient(base_url=ames_server.url, timeout=30) as client:
            return await asyncio.gather(*(client.post("/v1/models/ames:predict", json=b) for b in bodies))

    responses = asyncio.run(send_all())
    assert [r.status_code for r in responses] == [200] * len(rows)
    np.testing.assert_allclose([r.json()["predictions"][0] for r in responses], expected, rtol=1e-12)


def test_requests_are_not_access_logged_by_default(ames_server, ames_rows):
    ames_server.predict_v1({"instances": records(ames_rows.head(1))})
    assert "POST /v1/models/ames:predict" not in ames_server.output()


@pytest.fixture(scope="module")
def integer_label_server(tmp_path_factory):
    """A classifier whose labels are integers (0/1), saved as a plain MLflow model folder, served as
    registered version 7."""
    import pandas as pd
    from mlflow.models import infer_signature
    from sklearn.linear_model import LogisticRegression

    from tests.serving.conftest import start_server, stop_server

    frame = pd.DataFrame({"x": [0.0, 0.5, 1.0, 3.0, 3.5, 4.0], "y": [1.0, 0.0, 1.0, 0.0, 1.0, 0.0]})
    model = LogisticRegression().fit(frame, [0, 0, 0, 1, 1, 1])
    folder = tmp_path_factory.mktemp("int-labels") / "model"
    mlflow.sklearn.save_model(model, str(folder), signature=infer_signature(frame), input_example=frame.head(2))
    server = start_server(str(folder), "clf", folder.parent / "server.log", "--model-version", "7")
    yield server, model, frame
    stop_server(server)


def test_integer_class_labels_in_both_protocols(integer_label_server):
    server, model, frame = integer_label_server
    v1 = server.predict_v1({"instances": records(frame)})
    assert v1.status_code == 200, v1.text
    assert v1.json()["predictions"] == model.predict(frame).tolist()
    assert [list(p) for p in v1.json()["probabilities"]] == [["0", "1"]] * len(frame)  # JSON object keys are text
    v2 = server.infer_v2({"inputs": v2_tensors(frame)}).json()
    assert v2["model_version"] == "7"
    assert [(o["name"], o["datatype"]) for o in v2["outputs"]] == [
        ("prediction", "INT64"),
        ("probability_0", "FP64"),
        ("probability_1", "FP64"),
    ]
    metadata = httpx.get(f"{server.url}/v2/models/clf", timeout=10).json()
    assert [(o["name"], o["datatype"]) for o in metadata["outputs"]] == [
        (o["name"], o["datatype"]) for o in v2["outputs"]
    ]


def test_a_refusal_names_the_version_that_refused(integer_label_server, ames_server, ames_rows):
    server, _, _ = integer_label_server
    refused = server.infer_v2({"inputs": [{"name": "x", "shape": [1], "datatype": "FP64", "data": [1.0]}]})
    assert refused.status_code == 400 and refused.json()["model_version"] == "7", refused.text
    assert "model_version" not in ames_server.predict_v1({"instances": []}).json()  # started without one
