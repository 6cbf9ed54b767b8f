"""Chunked batch scoring: signature checks, chunk readers, and a whole file against a real registry."""

import re

import numpy as np
import pandas as pd
import pytest
from mlflow import MlflowClient
from mlflow.models import ModelSignature
from mlflow.types.schema import ColSpec, Schema
from sklearn.pipeline import Pipeline

from lifecycle.contract.signature import Column
from lifecycle.dataset.ingest import IngestError, ingest_table
from lifecycle.dataset.process import process_frame, split_frame
from lifecycle.dataset.storage import StorageError
from lifecycle.modelling.estimators import build_estimator, expand_search_space
from lifecycle.modelling.evaluation import holdout_metrics
from lifecycle.modelling.features import build_featurizer, features_and_target
from lifecycle.registry.registration import register_model
from lifecycle.scoring.batch import (
    SchemaMismatchError,
    UnscorableRowsError,
    conform_to_signature,
    model_columns,
    read_chunks,
    score_file,
)
from tests.conftest import quick

COLUMNS = (
    Column("area", "double", "number", True),
    Column("rooms", "long", "integer", False),
    Column("street", "string", "string", True),
)


def test_the_columns_are_the_signatures():
    signature = ModelSignature(
        inputs=Schema(
            [ColSpec("double", "area"), ColSpec("long", "rooms", required=False), ColSpec("string", "street")]
        )
    )
    assert model_columns(signature, "models:/houses/1") == COLUMNS


@pytest.mark.parametrize(
    ("signature", "problem"),
    [
        (None, "models:/houses/1 has no input signature with column names to check rows against"),
        ("binary", "models:/houses/1: column 'photo' has type 'binary'"),
    ],
)
def test_a_signature_rows_cannot_be_checked_against_is_a_schema_mismatch(signature, problem):
    if signature is not None:
        signature = ModelSignature(inputs=Schema([ColSpec(signature, "photo")]))
    with pytest.raises(SchemaMismatchError, match=re.escape(problem)):
        model_columns(signature, "models:/houses/1")


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
    register_model(
        model,
        train,
        test,
        config,
        holdout_metrics(model, test, config),
        "ames-scoring",
        0.0,
        lineage={},
        artifacts={},
        params={},
    )
    rows = ames_raw.drop(columns=["Sale_Price"]).head(700)
    rows.to_csv(tmp_path / "rows.csv.gz", index=False)

    result = score_file(
        "models:/ames-scoring@champion",
        str(tmp_path / "rows.csv.gz"),
        tmp_path / "out.parquet",
        chunk_rows=300,
        output_uri=str(tmp_path / "copy.parquet"),
    )

    assert (result.rows, result.chunks) == (700, 3)
    assert result.model_uri == "models:/ames-scoring/1", "the alias is resolved to the version it scored with"
    assert result.model_sha256 == MlflowClient().get_model_version("ames-scoring", "1").tags["model_sha256"]
    scored = pd.read_parquet(tmp_path / "out.parquet")
    assert scored["row"].tolist() == list(range(700))
    np.testing.assert_allclose(scored["prediction"], model.predict(rows))
    assert pd.read_parquet(tmp_path / "copy.parquet").equals(scored)


def test_score_file_scores_with_the_version_the_alias_named_when_it_started(
    mlflow_store, ames_model, ames_raw, tmp_path, monkeypatch
):
    """The alias is read once: moving it while the rows are scored changes neither the model used nor the
    version recorded."""
    import lifecycle.scoring.batch as scoring

    config, train, test, model = ames_model
    register_model(
        model,
        train,
        test,
        config,
        holdout_metrics(model, test, config),
        "ames-scoring",
        0.0,
        lineage={},
        artifacts={},
        params={},
    )
    client = MlflowClient()
    client.copy_model_version("models:/ames-scoring/1", "ames-scoring")  # v2, the same files
    ames_raw.drop(columns=["Sale_Price"]).head(50).to_csv(tmp_path / "rows.csv", index=False)
    reads = []

    def conform_and_move(chunk, columns, where):
        reads.append(where)
        client.set_registered_model_alias("ames-scoring", "champion", "2")
        return conform_to_signature(chunk, columns, where)

    monkeypatch.setattr(scoring, "conform_to_signature", conform_and_move)
    result = score_file(
        "models:/ames-scoring@champion", str(tmp_path / "rows.csv"), tmp_path / "out.parquet", chunk_rows=20
    )
    assert len(reads) == 3 and result.model_uri == "models:/ames-scoring/1"
    assert str(client.get_model_version_by_alias("ames-scoring", "champion").version) == "2"


def test_score_file_refuses_an_empty_file(mlflow_store, ames_model, ames_raw, tmp_path):
    config, train, test, model = ames_model
    register_model(
        model,
        train,
        test,
        config,
        holdout_metrics(model, test, config),
        "ames-scoring",
        0.0,
        lineage={},
        artifacts={},
        params={},
    )
    ames_raw.drop(columns=["Sale_Price"]).head(0).to_parquet(tmp_path / "empty.parquet")
    with pytest.raises(SchemaMismatchError, match="has no rows to score"):
        score_file("models:/ames-scoring@champion", str(tmp_path / "empty.parquet"), tmp_path / "out.parquet")


def test_a_refused_value_is_not_also_reported_as_missing():
    with pytest.raises(SchemaMismatchError) as error:
        conform_to_signature(pd.DataFrame({"area": ["x"], "street": ["Pave"]}), COLUMNS, "rows.csv")
    assert "expects double, got 'x'" in str(error.value) and "missing values" not in str(error.value)


def test_infinity_is_refused_like_the_online_predictor_does():
    with pytest.raises(SchemaMismatchError, match="column 'area' expects a finite number, got inf"):
        conform_to_signature(pd.DataFrame({"area": [1.0, float("inf")], "street": ["a", "b"]}), COLUMNS, "rows.csv")


def test_text_columns_read_the_same_in_every_csv_chunk(tmp_path):
    """Left to guess, pandas reads `1` in a chunk with a blank as the float 1.0, whose text is "1.0"."""
    path = tmp_path / "codes.csv"
    pd.DataFrame({"code": ["1", "2", "1", None], "x": [1.0, 2.0, 3.0, 4.0]}).to_csv(path, index=False)
    chunks = list(read_chunks(path, "csv", 2, text_columns=["code"]))
    codes = pd.concat(chunks)["code"]
    assert codes.iloc[:3].tolist() == ["1", "2", "1"] and codes.isna().iloc[3]


@pytest.fixture()
def registered(mlflow_store, ames_model, ames_raw):
    config, train, test, model = ames_model
    register_model(
        model,
        train,
        test,
        config,
        holdout_metrics(model, test, config),
        "ames-scoring",
        0.0,
        lineage={},
        artifacts={},
        params={},
    )
    return "models:/ames-scoring@champion", ames_raw.drop(columns=["Sale_Price"])


@pytest.mark.parametrize(
    ("content", "problem"),
    [("", "is empty: no header, no rows"), (None, "has no rows to score")],
    ids=["empty", "header-only"],
)
def test_an_empty_or_header_only_csv_is_named(registered, tmp_path, content, problem):
    uri, rows = registered
    path = tmp_path / "rows.csv"
    path.write_text(",".join(rows.columns) + "\n" if content is None else content)
    with pytest.raises(SchemaMismatchError, match=f"{path} {problem}"):
        score_file(uri, str(path), tmp_path / "out.parquet")


def test_a_failure_in_a_later_chunk_leaves_no_predictions_behind(registered, tmp_path):
    uri, rows = registered
    bad = rows.head(50).copy()
    bad["Lot_Area"] = bad["Lot_Area"].astype(object)
    bad.loc[35, "Lot_Area"] = "x"
    bad.to_csv(tmp_path / "late.csv", index=False)
    with pytest.raises(
        SchemaMismatchError, match=r"late.csv \(rows 20-39\) does not match .*'Lot_Area' expects double, got 'x'"
    ):
        score_file(uri, str(tmp_path / "late.csv"), tmp_path / "out.parquet", chunk_rows=20)
    assert list(tmp_path.glob("out.parquet*")) == []


def test_rows_the_model_cannot_score_are_named(registered, tmp_path):
    uri, rows = registered
    huge = rows.head(30).copy()
    huge[["Total_Bsmt_SF", "First_Flr_SF", "Second_Flr_SF"]] = huge[
        ["Total_Bsmt_SF", "First_Flr_SF", "Second_Flr_SF"]
    ].astype(float)
    huge.loc[25, ["Total_Bsmt_SF", "First_Flr_SF", "Second_Flr_SF"]] = 1e308
    huge.to_csv(tmp_path / "huge.csv", index=False)
    with pytest.raises(
        UnscorableRowsError,
        match=r"huge.csv \(rows 20-29\): the model cannot score these rows: Input X contains infinity",
    ):
        score_file(uri, str(tmp_path / "huge.csv"), tmp_path / "out.parquet", chunk_rows=10)


@pytest.mark.parametrize(
    ("output", "problem"),
    [
        ("rows.csv/preds.parquet", "rows.csv is a file, not a folder"),
        ("folder.parquet", "it is a folder; name a file"),
        ("preds.csv", "predictions are written as Parquet"),
        ("s3://bucket.parquet", "is not an s3://bucket/key URI"),
    ],
    ids=["under-a-file", "a-folder", "not-parquet", "no-key"],
)
def test_an_unwritable_output_is_refused_before_scoring(registered, tmp_path, output, problem):
    uri, rows = registered
    rows.head(5).to_csv(tmp_path / "rows.csv", index=False)
    (tmp_path / "folder.parquet").mkdir()
    target = output if output.startswith("s3://") else str(tmp_path / output)
    with pytest.raises(StorageError, match=re.escape(problem)):
        score_file(uri, str(tmp_path / "rows.csv"), tmp_path / "out.parquet", output_uri=target)
    assert not (tmp_path / "out.parquet").exists(), "refused before any row was scored"


def test_chunk_rows_must_be_positive(registered, tmp_path):
    uri, _ = registered
    with pytest.raises(ValueError, match="chunk_rows must be at least 1, got 0"):
        score_file(uri, str(tmp_path / "rows.csv"), tmp_path / "out.parquet", chunk_rows=0)


def test_csv_chunks_read_missing_markers_as_ingest_does(tmp_path):
    from tests.dataset.test_ingest import MISSING_MARKERS_CSV

    path = tmp_path / "markers.csv"
    path.write_text(MISSING_MARKERS_CSV)
    text = ["veneer", "alley"]
    scored = pd.concat(read_chunks(path, "csv", 3, text_columns=text), ignore_index=True)
    pd.testing.assert_frame_equal(scored, ingest_table(str(path), text_columns=text).frame)


def test_a_compressed_bomb_is_refused_by_name_before_scoring(mlflow_store, ames_model, ames_raw, tmp_path, monkeypatch):
    import gzip

    config, train, test, model = ames_model
    register_model(
        model,
        train,
        test,
        config,
        holdout_metrics(model, test, config),
        "ames-scoring",
        0.0,
        lineage={},
        artifacts={},
        params={},
    )
    monkeypatch.setenv("INGEST_MAX_DECOMPRESSED_BYTES", str(1 << 20))
    bomb = tmp_path / "rows.csv.gz"
    with gzip.open(bomb, "wb") as out:
        out.write(ames_raw.drop(columns=["Sale_Price"]).head(1).to_csv(index=False).encode())
        out.write(b"\n" * (8 << 20))
    with pytest.raises(IngestError, match=rf"{re.escape(str(bomb))} expands to more than 1,048,576 bytes"):
        score_file("models:/ames-scoring@champion", str(bomb), tmp_path / "out.parquet")
    assert not (tmp_path / "out.parquet").exists()
