"""Chunked batch scoring: signature checks, chunk readers, and a whole file against a real registry."""

import numpy as np
import pandas as pd
import pytest
from sklearn.pipeline import Pipeline

from lifecycle.estimators import build_estimator, expand_search_space
from lifecycle.evaluation import holdout_metrics
from lifecycle.features import build_featurizer, features_and_target
from lifecycle.process import process_frame, split_frame
from lifecycle.registry import register_model
from lifecycle.scoring import ColumnSchema, SchemaMismatchError, conform_to_signature, read_chunks, score_file
from tests.conftest import quick

COLUMNS = [
    ColumnSchema("area", "double", True),
    ColumnSchema("rooms", "long", False),
    ColumnSchema("street", "string", True),
]


def test_conform_casts_to_the_signature_and_drops_extra_columns():
    chunk = pd.DataFrame({"area": ["65.5", 70], "rooms": [3, None], "street": ["Pave", 7], "extra": [1, 2]})
    out = conform_to_signature(chunk, COLUMNS, "rows.csv")
    assert list(out.columns) == ["area", "rooms", "street"]
    assert out["area"].tolist() == [65.5, 70.0]
    assert out["rooms"].dtype == "float64" and np.isnan(out["rooms"].iloc[1])
    assert out["street"].tolist() == ["Pave", "7"]


def test_an_optional_column_may_be_absent():
    out = conform_to_signature(pd.DataFrame({"area": [1.0], "street": ["Pave"]}), COLUMNS, "rows.csv")
    assert np.isnan(out["rooms"].iloc[0])


def test_every_problem_is_named_in_one_error():
    chunk = pd.DataFrame({"area": ["big", 1.0], "rooms": [1, 2]})
    with pytest.raises(SchemaMismatchError) as error:
        conform_to_signature(chunk, COLUMNS, "rows.csv (rows 0-1)")
    message = str(error.value)
    assert message.startswith("rows.csv (rows 0-1) does not match the model's signature")
    assert "missing column(s): street" in message
    assert "column 'area' expects double, got 'big'" in message


def test_a_blank_in_a_required_column_is_named():
    with pytest.raises(SchemaMismatchError, match="column 'street' is required but has missing values"):
        conform_to_signature(pd.DataFrame({"area": [1.0], "street": [None]}), COLUMNS, "rows.csv")


@pytest.mark.parametrize("fmt", ["csv", "parquet"])
def test_chunks_cover_every_row_once(tmp_path, fmt):
    frame = pd.DataFrame({"a": range(1050), "b": ["x"] * 1050})
    path = tmp_path / f"rows.{fmt}"
    frame.to_csv(path, index=False) if fmt == "csv" else frame.to_parquet(path, row_group_size=100)
    chunks = list(read_chunks(path, fmt, 400))
    assert [len(c) for c in chunks] == [400, 400, 250]
    assert pd.concat(chunks)["a"].tolist() == list(range(1050))


@pytest.fixture(scope="module")
def ames_model(ames_raw, ames_config):
    config = quick(ames_config)
    train, test = split_frame(process_frame(ames_raw, config), config)
    X, y = features_and_target(train, config)
    candidate = expand_search_space(config)[0]
    model = Pipeline([("features", build_featurizer(config)), ("model", build_estimator(candidate, config))]).fit(X, y)
    return config, train, test, model


def test_score_file_writes_every_row_in_order_and_copies_it(mlflow_store, ames_model, ames_raw, tmp_path):
    config, train, test, model = ames_model
    register_model(model, train, test, config, holdout_metrics(model, test, config), "ames-scoring", 0.0,
                   lineage={}, artifacts={}, params={})
    rows = ames_raw.drop(columns=["Sale_Price"]).head(700)
    rows.to_csv(tmp_path / "rows.csv.gz", index=False)

    result = score_file("models:/ames-scoring@champion", str(tmp_path / "rows.csv.gz"), tmp_path / "out.parquet",
                        chunk_rows=300, output_uri=str(tmp_path / "copy.parquet"))

    assert (result.rows, result.chunks) == (700, 3)
    scored = pd.read_parquet(tmp_path / "out.parquet")
    assert scored["row"].tolist() == list(range(700))
    np.testing.assert_allclose(scored["prediction"], model.predict(rows))
    assert pd.read_parquet(tmp_path / "copy.parquet").equals(scored)


def test_score_file_refuses_an_empty_file(mlflow_store, ames_model, ames_raw, tmp_path):
    config, train, test, model = ames_model
    register_model(model, train, test, config, holdout_metrics(model, test, config), "ames-scoring", 0.0,
                   lineage={}, artifacts={}, params={})
    ames_raw.drop(columns=["Sale_Price"]).head(0).to_parquet(tmp_path / "empty.parquet")
    with pytest.raises(SchemaMismatchError, match="has no rows to score"):
        score_file("models:/ames-scoring@champion", str(tmp_path / "empty.parquet"), tmp_path / "out.parquet")
