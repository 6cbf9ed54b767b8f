"""For the same rows, the online predictor and the `batch-scoring` pipeline give identical predictions."""

import numpy as np
import pandas as pd
import pytest

from tests.conftest import AMES_CONFIG, TELCO_CONFIG
from tests.serving.conftest import records, v2_tensors
from tools.run_local import run_scoring

pytestmark = pytest.mark.pipeline


def batch_scored(rows: pd.DataFrame, config, model_name: str, workdir, tmp_path) -> pd.DataFrame:
    source = tmp_path / "rows.csv"
    rows.to_csv(source, index=False)
    result = run_scoring(config, str(source), workdir, model_name, chunk_rows=64)
    return pd.read_parquet(result["predictions"])


def test_ames_online_equals_batch_scoring(ames_server, ames_model, ames_rows, workdir, tmp_path):
    batch = batch_scored(ames_rows, AMES_CONFIG, ames_model.name, workdir, tmp_path)
    v1 = ames_server.predict_v1({"instances": records(ames_rows)})
    v2 = ames_server.infer_v2({"inputs": v2_tensors(ames_rows)})
    assert v1.status_code == 200 and v2.status_code == 200
    np.testing.assert_array_equal(v1.json()["predictions"], batch["prediction"].to_numpy())
    np.testing.assert_array_equal(v2.json()["outputs"][0]["data"], batch["prediction"].to_numpy())


def test_telco_online_equals_batch_scoring(telco_server, telco_model, telco_rows, workdir, tmp_path):
    batch = batch_scored(telco_rows, TELCO_CONFIG, telco_model.name, workdir, tmp_path)
    answer = telco_server.predict_v1({"instances": records(telco_rows)}).json()
    assert answer["predictions"] == batch["prediction"].tolist()
    for label in answer["probabilities"][0]:
        online = [p[label] for p in answer["probabilities"]]
        np.testing.assert_array_equal(online, batch[f"probability_{label}"].to_numpy())


def test_text_that_pandas_would_read_as_missing_scores_as_the_client_sends_it(
    ames_server, ames_model, ames_rows, workdir, tmp_path
):
    """A JSON client sends "NA" or "None" as text and null for missing; a CSV's text columns must
    read the same way (pandas alone reads "NA", "None", "null" as missing)."""
    rows = ames_rows.head(60).copy()
    rows["Mas_Vnr_Type"] = (["NA", "None", "null", None] * 15)[: len(rows)]
    batch = batch_scored(rows, AMES_CONFIG, ames_model.name, workdir, tmp_path)
    v1 = ames_server.predict_v1({"instances": records(rows)})
    assert v1.status_code == 200
    np.testing.assert_array_equal(v1.json()["predictions"], batch["prediction"].to_numpy())
