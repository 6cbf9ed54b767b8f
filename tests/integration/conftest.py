"""The loopback stack (moto S3 + a real `mlflow server`) shared by the integration tests.

One stack serves the whole package: starting the MLflow server costs seconds. Tests that break a
part (stop the tracking server, stop S3) put it back before they return, and use their own model
names where they add versions, so the main flow's registry stays as its tests expect.
"""

from __future__ import annotations

import contextlib
import io
import os
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.conftest import AMES_CONFIG, AMES_DATA, quick
from tools.stack import LoopbackStack

MODEL = "ames-stack"
DATA_KEY = "ames/ames.csv.gz"


@pytest.fixture(scope="package")
def stack(tmp_path_factory):
    """The stack, and this process's environment pointed at it as the cluster would point a step."""
    with LoopbackStack(tmp_path_factory.mktemp("stack")) as running, pytest.MonkeyPatch.context() as patch:
        for name, value in running.environment().items():
            patch.setenv(name, value)
        patch.setenv("OMP_NUM_THREADS", "1")
        yield running


@pytest.fixture(autouse=True)
def tracking_uri_from_environment():
    """Each test's MLflow clients follow MLFLOW_TRACKING_URI, whichever server an earlier test used.

    `register_model` run in this process pins MLflow's process-wide tracking URI, which outlives
    the environment it came from (a module's own server, stopped since).
    """
    yield
    import mlflow

    uri = os.environ.get("MLFLOW_TRACKING_URI")
    mlflow.set_tracking_uri(None)  # unsets the variable too: put back as it was
    if uri:
        os.environ["MLFLOW_TRACKING_URI"] = uri


@pytest.fixture(scope="package")
def ames_s3_uri(stack) -> str:
    """The bundled Ames CSV uploaded to the stack's data bucket with the minio client."""
    from lifecycle.dataset.storage import s3_client

    s3_client().fput_object(stack.data_bucket, DATA_KEY, str(AMES_DATA))
    return f"s3://{stack.data_bucket}/{DATA_KEY}"


@pytest.fixture(scope="package")
def quick_ames():
    """Ames with one cheap candidate: the network paths are under test, not the search."""
    from lifecycle.dataset.config import load_config

    return quick(load_config(AMES_CONFIG))


class Tee(io.TextIOBase):
    """Writes to the real stdout and to a log file: kfp.local prints each step's output."""

    def __init__(self, stream, log):
        self.stream, self.log = stream, log

    def write(self, text):
        self.log.write(text)
        return self.stream.write(text)

    def flush(self):
        self.log.flush()
        self.stream.flush()


@contextlib.contextmanager
def step_log(path: Path):
    """Everything the pipeline's steps print, also kept in `path`."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a") as log, contextlib.redirect_stdout(Tee(sys.stdout, log)):
        yield path


@dataclass
class TrainedFlow:
    registration: dict
    data_uri: str
    log: Path


@pytest.fixture(scope="package")
def trained(stack, ames_s3_uri, quick_ames) -> TrainedFlow:
    """`training` through kfp.local reading s3:// data, registering on the stack's MLflow server."""
    from tools.run_local import run_training

    log = stack.workdir / "logs" / "training.log"
    with step_log(log):
        registration = run_training(quick_ames, stack.workdir, data_uri=ames_s3_uri, model_name=MODEL)
    return TrainedFlow(registration, ames_s3_uri, log)


@pytest.fixture(scope="package")
def download_uri(stack, trained) -> str:
    """Where the registered version's artifacts physically are (s3:// with this stack)."""
    from mlflow import MlflowClient

    return MlflowClient().get_model_version_download_uri(MODEL, trained.registration["version"])


@pytest.fixture(scope="package")
def model_sha256(stack, trained) -> str:
    """The digest registration recorded for the version's model file (what the deploy step gives the predictor)."""
    from mlflow import MlflowClient

    tags = MlflowClient().get_model_version(MODEL, trained.registration["version"]).tags
    assert tags.get("model_sha256"), (
        f"{MODEL} v{trained.registration['version']} has no model_sha256 tag: {sorted(tags)}"
    )
    return tags["model_sha256"]


@pytest.fixture(scope="package")
def model_folder(download_uri, tmp_path_factory) -> Path:
    """The version's artifacts copied exactly as KServe's storage initializer copies them."""
    from kserve_storage import Storage

    destination = tmp_path_factory.mktemp("mnt-models")
    Storage.download(download_uri, str(destination))
    return destination


@pytest.fixture(scope="package")
def batch_scored(stack, trained, quick_ames, tmp_path_factory) -> dict:
    """`batch-scoring` with the champion on the S3 data, its predictions copied to S3 and read back."""
    import pandas as pd

    from lifecycle.dataset.storage import parse_s3_uri, s3_client
    from tools.run_local import run_scoring

    output_uri = f"s3://{stack.data_bucket}/predictions/{MODEL}-champion.parquet"
    log = stack.workdir / "logs" / "batch-scoring.log"
    with step_log(log):
        result = run_scoring(quick_ames, trained.data_uri, stack.workdir, MODEL, output_uri=output_uri)
    local = tmp_path_factory.mktemp("predictions") / "predictions.parquet"
    location = parse_s3_uri(output_uri)
    s3_client().fget_object(location.bucket, location.key, str(local))
    return {**result, "frame": pd.read_parquet(local), "log": log}


def registry_state(model_name: str) -> dict:
    """Every version of a model with its aliases, and where each alias points."""
    from mlflow import MlflowClient

    client = MlflowClient(os.environ["MLFLOW_TRACKING_URI"])
    versions = client.search_model_versions(f"name='{model_name}'")
    return {str(v.version): sorted(client.get_model_version(model_name, v.version).aliases) for v in versions}


def assert_aliases_resolve(model_name: str) -> dict[str, str]:
    """Every alias of the model points at a version that exists; returns alias -> version."""
    from mlflow import MlflowClient

    client = MlflowClient(os.environ["MLFLOW_TRACKING_URI"])
    model = client.get_registered_model(model_name)
    existing = {str(v.version) for v in client.search_model_versions(f"name='{model_name}'")}
    aliases = {alias: str(version) for alias, version in model.aliases.items()}
    missing = {alias: version for alias, version in aliases.items() if version not in existing}
    assert not missing, f"aliases at missing versions: {missing} (versions {sorted(existing)})"
    return aliases
