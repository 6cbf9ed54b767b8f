"""`batch-scoring` through kfp.local against the models that `training` registered."""

import mlflow.sklearn
import numpy as np
import pandas as pd
import pytest

from tests.conftest import AMES_CONFIG, TELCO_CONFIG
from tools.run_local import run_scoring

pytestmark = pytest.mark.pipeline


def test_ames_predictions_in_chunks_equal_the_champion_predict(ames_run, workdir, tmp_path, ames_raw):
    rows = ames_raw.drop(columns=["Sale_Price"]).head(1000)
    source = tmp_path / "rows.parquet"
    rows.to_parquet(source, row_group_size=250)
    copy = tmp_path / "copy" / "predictions.parquet"

    result = run_scoring(AMES_CONFIG, str(source), workdir, chunk_rows=300, output_uri=str(copy))

    assert (result["rows"], result["chunks"]) == (1000, 4)
    scored = pd.read_parquet(result["predictions"])
    assert list(scored["row"]) == list(range(1000))
    champion = mlflow.sklearn.load_model("models:/ames-house-prices@champion")
    np.testing.assert_array_equal(scored["prediction"].to_numpy(), champion.predict(rows))
    pd.testing.assert_frame_equal(pd.read_parquet(copy), scored)


def test_telco_csv_gets_labels_and_class_probabilities(telco_run, workdir, tmp_path, telco_raw):
    rows = telco_raw.drop(columns=["churn"]).sample(500, random_state=0)
    source = tmp_path / "rows.csv"
    rows.to_csv(source, index=False)

    result = run_scoring(TELCO_CONFIG, str(source), workdir, chunk_rows=200)

    assert (result["rows"], result["chunks"]) == (500, 3)
    scored = pd.read_parquet(result["predictions"])
    champion = mlflow.sklearn.load_model("models:/telco-churn@champion")
    probability_columns = [f"probability_{label}" for label in champion.classes_]
    assert list(scored.columns) == ["row", "prediction", *probability_columns]
    reread = pd.read_csv(source)
    np.testing.assert_array_equal(scored["prediction"].to_numpy(), champion.predict(reread))
    np.testing.assert_allclose(scored[probability_columns].sum(axis=1), 1.0)


def test_rows_missing_a_signature_column_fail_naming_it(ames_run, workdir, tmp_path, ames_raw, capfd):
    rows = ames_raw.drop(columns=["Sale_Price", "Gr_Liv_Area"]).head(50)
    source = tmp_path / "rows.csv"
    rows.to_csv(source, index=False)

    with pytest.raises(RuntimeError, match="score-batch"):
        run_scoring(AMES_CONFIG, str(source), workdir)
    output = capfd.readouterr()
    assert "missing column(s): Gr_Liv_Area" in output.out + output.err
