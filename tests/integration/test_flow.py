"""The cluster's data path on loopback: S3 data -> training -> MLflow (artifacts in S3) ->
KServe's storage download -> the project's predictor, and batch scoring writing to S3."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from mlflow import MlflowClient

from lifecycle.dataset.storage import parse_s3_uri, s3_client
from tests.conftest import AMES_DATA
from tests.integration.conftest import MODEL
from tools.stack import PredictorProcess

# Also `pipeline`: they run whole pipelines, which `make test-fast` leaves out.
pytestmark = [pytest.mark.integration, pytest.mark.pipeline]


@pytest.fixture(scope="module")
def predictor(stack, model_folder, model_sha256):
    """The project's predictor serving the downloaded folder, as the InferenceService would."""
    log = stack.workdir / "logs" / "predictor.log"
    with PredictorProcess(model_folder, "ames", log, model_sha256=model_sha256) as running:
        yield running


def test_training_registers_from_s3_data(trained):
    registration = trained.registration
    assert registration["aliases"] == ["challenger", "champion"]
    version = MlflowClient().get_model_version(MODEL, registration["version"])
    assert version.tags["data_uri"] == trained.data_uri
    assert version.status == "READY"


def test_registered_artifacts_are_in_the_bucket(stack, download_uri):
    location = parse_s3_uri(download_uri)
    assert location.bucket == stack.artifact_bucket
    names = {
        Path(o.object_name).name
        for o in s3_client().list_objects(location.bucket, prefix=location.key + "/", recursive=True)
    }
    assert {"MLmodel", "model.skops", "requirements.txt"} <= names


def test_storage_download_gives_a_loadable_mlflow_model(model_folder, trained):
    import mlflow.sklearn

    assert (model_folder / "MLmodel").is_file() and (model_folder / "model.skops").is_file()
    model = mlflow.sklearn.load_model(str(model_folder))
    assert hasattr(model, "predict")


def test_batch_scoring_writes_predictions_to_s3(batch_scored):
    frame = batch_scored["frame"]
    assert batch_scored["rows"] == len(frame) == 2930
    assert list(frame.columns[:2]) == ["row", "prediction"]
    assert frame["prediction"].notna().all()
    assert 100_000 < frame["prediction"].median() < 300_000


def test_served_download_predicts_as_batch_scoring(predictor, batch_scored):
    rows = pd.read_csv(AMES_DATA).head(200).drop(columns=["Sale_Price"])
    served = predictor.predict(json.loads(rows.to_json(orient="records")))
    batch = batch_scored["frame"].set_index("row").loc[range(200), "prediction"]
    np.testing.assert_allclose(served, batch.to_numpy(), rtol=1e-12, atol=0)
