"""Bad input fails the training run at ingest or validate, names the problem, and leaves the
registry exactly as it was."""

import gzip
import json

import pandas as pd
import pytest

from lifecycle.dataset.config import config_as_json
from pipelines.training import training
from tests.conftest import AMES_DATA, quick
from tests.pipelines.conftest import registry_state
from tools.run_local import run_training

pytestmark = pytest.mark.pipeline
MODEL = "ames-house-prices"


@pytest.fixture
def quick_ames(ames_config):
    return quick(ames_config)


def fails(capfd, config_json: str, data_uri: str, step: str, message: str) -> None:
    before = registry_state(MODEL)
    with pytest.raises(RuntimeError, match=step):
        training(config=config_json, data_uri=data_uri, model_name=MODEL)
    output = capfd.readouterr()
    assert message in output.out + output.err
    assert registry_state(MODEL) == before


def write_csv(path, frame):
    frame.to_csv(path, index=False)
    return str(path)


@pytest.fixture(autouse=True)
def champion_exists(ames_run, local_runner):
    """A registry with a champion, so "untouched" means something."""


def test_missing_required_column(capfd, tmp_path, ames_raw, quick_ames):
    data = write_csv(tmp_path / "ames.csv", ames_raw.drop(columns=["Neighborhood"]))
    fails(
        capfd,
        config_as_json(quick_ames),
        data,
        "validate-dataset",
        "Neighborhood: required: required column is missing",
    )


def test_text_in_numeric_column(capfd, tmp_path, ames_raw, quick_ames):
    frame = ames_raw.astype({"Lot_Area": object})
    frame.loc[7, "Lot_Area"] = "big"
    data = write_csv(tmp_path / "ames.csv", frame)
    fails(
        capfd,
        config_as_json(quick_ames),
        data,
        "validate-dataset",
        "Lot_Area: dtype: expected numbers, found text in 1 row(s): 'big'",
    )


def test_target_all_empty(capfd, tmp_path, ames_raw, quick_ames):
    data = write_csv(tmp_path / "ames.csv", ames_raw.assign(Sale_Price=None))
    fails(
        capfd, config_as_json(quick_ames), data, "validate-dataset", "Sale_Price: target: target is empty in every row"
    )


def test_negative_prices(capfd, tmp_path, ames_raw, quick_ames):
    frame = ames_raw.copy()
    frame.loc[:2, "Sale_Price"] = -5
    data = write_csv(tmp_path / "ames.csv", frame)
    fails(
        capfd, config_as_json(quick_ames), data, "validate-dataset", "Sale_Price: range: 3 value(s) below minimum 1: -5"
    )


@pytest.mark.parametrize(
    "name, content, message",
    [
        ("empty.csv", b"", "empty.csv is empty (0 bytes)"),
        (
            "header.csv",
            gzip.decompress(AMES_DATA.read_bytes()).split(b"\n")[0] + b"\n",
            "header.csv has a header but no data rows",
        ),
        ("table.xlsx", b"PK\x03\x04", "table.xlsx is neither CSV nor Parquet"),
    ],
)
def test_unreadable_files(capfd, tmp_path, quick_ames, name, content, message):
    path = tmp_path / name
    path.write_bytes(content)
    fails(capfd, config_as_json(quick_ames), str(path), "ingest-dataset", message)


def test_path_that_does_not_exist(capfd, tmp_path, quick_ames):
    fails(
        capfd,
        config_as_json(quick_ames),
        str(tmp_path / "nowhere.csv"),
        "ingest-dataset",
        f"file not found: {tmp_path}/nowhere.csv",
    )


def test_unknown_config_key(capfd, quick_ames):
    raw = json.loads(config_as_json(quick_ames))
    raw["split"]["sead"] = 7
    fails(capfd, json.dumps(raw), str(AMES_DATA), "ingest-dataset", "split.sead: unknown field")


def test_config_missing_a_required_field(capfd, quick_ames):
    raw = json.loads(config_as_json(quick_ames))
    del raw["target"]["name"]
    fails(capfd, json.dumps(raw), str(AMES_DATA), "ingest-dataset", "target.name: Field required")


def test_parquet_input_trains(ames_raw, tmp_path, quick_ames, local_runner):
    """The same pipeline takes Parquet; a quick config keeps it short (it registers a challenger)."""
    path = tmp_path / "ames.parquet"
    ames_raw.to_parquet(path)
    result = run_training(quick_ames, local_runner, data_uri=str(path), model_name="ames-parquet")
    assert result["version"] == "1" and pd.notna(result["metrics"]["test_rmsle"])
