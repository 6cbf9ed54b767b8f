"""Servers for the serving tests, on the models the project's own `training` pipeline registered.

`ames_run` and `telco_run` (tests/conftest.py) train and register once per session; each server
here is `python -m serving` as a real subprocess on a free loopback port.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass
from pathlib import Path

import httpx
import pandas as pd
import pytest

from lifecycle.contract.protocol import records_from_frame, v1_predict_path, v2_infer_path, v2_request
from tests.conftest import ROOT
from tools.stack import PredictorProcess, StackError


@dataclass(frozen=True)
class ServedModel:
    name: str
    uri: str  # models:/NAME@champion
    version: str
    task: str  # regression | classification
    target: str


def records(frame: pd.DataFrame) -> list[dict]:
    """JSON rows as a client sends them: missing values as null."""
    return records_from_frame(frame)


def v2_tensors(frame: pd.DataFrame) -> list[dict]:
    """One named 1-D tensor per column, the Open Inference Protocol's way to send a table."""
    return v2_request(frame)["inputs"]


def records_by_column(frame: pd.DataFrame) -> dict[str, list]:
    return {
        k: [None if isinstance(v, float) and math.isnan(v) else v for v in values]
        for k, values in frame.to_dict("list").items()
    }


@pytest.fixture(scope="session")
def ames_model(ames_run) -> ServedModel:
    return ServedModel(
        ames_run["model_name"],
        f"models:/{ames_run['model_name']}@champion",
        ames_run["version"],
        "regression",
        "Sale_Price",
    )


@pytest.fixture(scope="session")
def telco_model(telco_run) -> ServedModel:
    return ServedModel(
        telco_run["model_name"],
        f"models:/{telco_run['model_name']}@champion",
        telco_run["version"],
        "classification",
        "churn",
    )


@pytest.fixture(scope="session")
def ames_rows(ames_raw) -> pd.DataFrame:
    """Raw Ames rows as a client has them (no target)."""
    return ames_raw.drop(columns=["Sale_Price"]).sample(200, random_state=1).reset_index(drop=True)


@pytest.fixture(scope="session")
def telco_rows(telco_raw) -> pd.DataFrame:
    return telco_raw.drop(columns=["churn"]).sample(200, random_state=1).reset_index(drop=True)


def fit_ames(rows: int = 1200):
    """A small model built from the project's parts (featurizer + gradient boosting on log price), for
    tests that need a registered model in seconds rather than a whole pipeline run."""
    import numpy as np
    from sklearn.compose import TransformedTargetRegressor
    from sklearn.ensemble import HistGradientBoostingRegressor
    from sklearn.pipeline import Pipeline

    from lifecycle.dataset.config import load_config
    from lifecycle.dataset.process import process_frame
    from lifecycle.modelling.features import build_featurizer, features_and_target

    config = load_config(ROOT / "configs" / "ames.yaml")
    X, y = features_and_target(process_frame(pd.read_csv(ROOT / config.data_uri), config), config)
    regressor = HistGradientBoostingRegressor(max_iter=60, max_leaf_nodes=15, early_stopping=False, random_state=0)
    model = Pipeline(
        [
            ("features", build_featurizer(config)),
            ("model", TransformedTargetRegressor(regressor=regressor, func=np.log, inverse_func=np.exp)),
        ]
    )
    model.fit(X.iloc[:rows], y.iloc[:rows])
    return model, X.iloc[:rows], X.iloc[rows:].reset_index(drop=True)


def register(model, train: pd.DataFrame, name: str) -> str:
    """Logs and registers as the training pipeline does (skops, signature, input example, digest tag, aliases)."""
    import mlflow
    import mlflow.sklearn
    import skops.io
    from mlflow import MlflowClient
    from mlflow.models import infer_signature

    from lifecycle.registry.registered_model import MODEL_SHA256_TAG, stored_digest

    trusted = sorted(skops.io.get_untrusted_types(data=skops.io.dumps(model)))
    mlflow.set_experiment(name)
    with mlflow.start_run():
        info = mlflow.sklearn.log_model(
            sk_model=model,
            name="model",
            signature=infer_signature(train, model.predict(train.head(50))),
            input_example=train.head(5),
            serialization_format="skops",
            skops_trusted_types=trusted,
        )
    digest = stored_digest(info.model_uri, model, train.head(5))
    version = mlflow.register_model(info.model_uri, name, tags={MODEL_SHA256_TAG: digest}).version
    client = MlflowClient()
    client.set_registered_model_alias(name, "champion", version)
    client.set_registered_model_alias(name, "challenger", version)
    return str(version)


@dataclass
class Server:
    """A running predictor process and a client for it."""

    predictor: PredictorProcess

    @property
    def url(self) -> str:
        return self.predictor.url

    @property
    def name(self) -> str:
        return self.predictor.model_name

    def predict_v1(self, body, **kwargs) -> httpx.Response:
        return httpx.post(self.url + v1_predict_path(self.name), json=body, timeout=30, **kwargs)

    def infer_v2(self, body, **kwargs) -> httpx.Response:
        return httpx.post(self.url + v2_infer_path(self.name), json=body, timeout=30, **kwargs)

    def ready(self) -> bool:
        try:
            return httpx.get(f"{self.url}/v2/health/ready", timeout=2).status_code == 200
        except httpx.HTTPError:
            return False

    def output(self) -> str:
        return self.predictor.log_path.read_text(errors="replace")

    def metrics(self, prefix: str = "") -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
        """GET /metrics, parsed: {(sample name, sorted labels): value} for the samples named `prefix...`."""
        from prometheus_client.parser import text_string_to_metric_families

        answer = httpx.get(f"{self.url}/metrics", timeout=10)
        assert answer.status_code == 200, answer.text
        return {
            (sample.name, tuple(sorted(sample.labels.items()))): sample.value
            for family in text_string_to_metric_families(answer.text)
            for sample in family.samples
            if sample.name.startswith(prefix)
        }


def folder_sha256(model_uri: str) -> str | None:
    """The sha256 of a local model folder's model.skops (in it, or in its one subfolder holding
    MLmodel), as the registry's tag records it; None for a models:/ URI or a folder without one."""
    folder = Path(str(model_uri).removeprefix("file://"))
    if str(model_uri).startswith("models:/") or not folder.is_dir():
        return None
    files = [folder / "model.skops"] if (folder / "model.skops").is_file() else sorted(folder.glob("*/model.skops"))
    return hashlib.sha256(files[0].read_bytes()).hexdigest() if len(files) == 1 else None


def digest_args(model_uri: str, extra: tuple[str, ...] = ()) -> tuple[str, ...]:
    """`--model-sha256 <digest>` for a local folder (the predictor refuses one without it), unless given."""
    digest = folder_sha256(model_uri)
    return extra if digest is None or "--model-sha256" in extra else ("--model-sha256", digest, *extra)


def start_server(model_uri: str, name: str, log: Path, *extra: str, timeout: float = 120) -> Server:
    """`python -m serving ...` as a subprocess; returns once /v2/health/ready answers 200. A local
    folder is served with its model file's digest."""
    predictor = PredictorProcess(model_uri, name, log, args=digest_args(model_uri, extra))
    predictor.start(timeout)
    return Server(predictor)


def stop_server(server: Server) -> None:
    server.predictor.stop()


def refusal(model_uri: str, log: Path) -> str:
    """Starts a server that must exit with code 1 without ever answering ready; returns what it said."""
    with pytest.raises(StackError, match="predictor exited with code 1 before it was ready"):
        PredictorProcess(model_uri, "m", log, args=digest_args(model_uri)).start()
    return log.read_text(errors="replace")


@pytest.fixture(scope="session")
def ames_server(ames_model, tmp_path_factory):
    server = start_server(
        ames_model.uri, "ames", tmp_path_factory.mktemp("logs") / "ames.log", "--max-request-rows", "500"
    )
    yield server
    stop_server(server)


@pytest.fixture(scope="session")
def telco_server(telco_model, tmp_path_factory):
    server = start_server(telco_model.uri, "telco", tmp_path_factory.mktemp("logs") / "telco.log")
    yield server
    stop_server(server)
