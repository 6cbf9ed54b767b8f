"""Drafting a config from a file: typing, bounds, levels, the task, refusals, and the written YAML."""

import numpy as np
import pandas as pd
import pytest
import yaml

from lifecycle.dataset.config import load_config, parse_config
from lifecycle.dataset.draft import (
    CATEGORY_CAP,
    DraftError,
    dataset_name,
    draft_config,
    model_name,
    numeric_bounds,
    write_draft,
)
from lifecycle.dataset.ingest import IngestError, ingest_table, text_columns_of
from lifecycle.dataset.validate import validate_frame
from tests.conftest import AMES_DATA, TELCO_DATA
from tools.init_config import main

ROWS = 200


def csv(tmp_path, frame: pd.DataFrame, name: str = "data.csv") -> str:
    path = tmp_path / name
    frame.to_csv(path, index=False)
    return str(path)


def mixed_frame(rows: int = ROWS) -> pd.DataFrame:
    rng = np.random.default_rng(0)
    return pd.DataFrame(
        {
            "area": rng.integers(300, 5000, rows),
            "temperature": rng.normal(-5, 10, rows).round(2),
            "flag": rng.integers(0, 2, rows),
            "colour": rng.choice(["red", "green", "blue"], rows),
            "price": np.exp(rng.normal(12, 0.5, rows)).round(),
        }
    )


def test_columns_are_typed_and_bounded_as_observed(tmp_path):
    frame = mixed_frame()
    config = draft_config(csv(tmp_path, frame), "price").config
    assert config.numeric_columns == ["area", "temperature", "flag"]
    assert config.categorical_columns == ["colour"]
    area, temperature = config.columns["area"], config.columns["temperature"]
    assert area.min == 0 and area.max >= frame.area.max() + (frame.area.max() - frame.area.min())
    assert temperature.min < frame.temperature.min() - 10 and temperature.max > frame.temperature.max() + 10
    assert (config.columns["flag"].min, config.columns["flag"].max) == (0, 1)
    assert config.columns["colour"].categories == ["blue", "green", "red"]
    assert all(spec.max_null_fraction is None for spec in config.columns.values())


@pytest.mark.parametrize(
    "values, bounds",
    [
        ([1872, 2010], (1600, 2300)),  # widened by a tenth of the values' size: years may grow
        ([-93.69, -93.58], (-104, -84)),
        ([0, 313], (0, 700)),  # never below zero when nothing was
        ([-3.5, 2.0], (-9.0, 8.0)),
        ([0, 1, 1, 0], (0, 1)),  # a flag stays a flag
        ([5, 5], (4.5, 5.5)),
    ],
)
def test_bounds_widen_the_observed_range(values, bounds):
    assert numeric_bounds(pd.Series(values, dtype="float64")) == bounds


def test_levels_are_listed_up_to_the_cap_then_left_open(tmp_path):
    frame = mixed_frame()
    frame["few"] = [f"l{i % CATEGORY_CAP:02d}" for i in range(ROWS)]
    frame["many"] = [f"m{i % (CATEGORY_CAP + 1):02d}" for i in range(ROWS)]
    draft = draft_config(csv(tmp_path, frame), "price")
    assert len(draft.config.columns["few"].categories) == CATEGORY_CAP
    assert draft.config.columns["many"].type == "categorical" and draft.config.columns["many"].categories is None
    assert (
        f"many: {{type: categorical}}  # {CATEGORY_CAP + 1} levels: over {CATEGORY_CAP}, so the list is left open"
        in draft.text
    )
    assert f"({1} with more than {CATEGORY_CAP} levels, left open)" in draft.summary


def test_text_levels_are_read_as_the_pipeline_reads_them(tmp_path):
    """In a text column "NA" and "None" are levels; only a blank is missing."""
    frame = mixed_frame()
    frame["veneer"] = (["None", "NA", "Brick", ""] * ROWS)[:ROWS]
    draft = draft_config(csv(tmp_path, frame), "price")
    veneer = draft.config.columns["veneer"]
    assert veneer.categories == ["Brick", "NA", "None"]
    assert veneer.max_null_fraction == 0.3  # 25% observed, plus slack, in steps of 5%
    assert "veneer:  # 3 levels, 25.0% null" in draft.text


def test_identifiers_constant_and_empty_columns_are_left_out_with_the_reason(tmp_path):
    frame = mixed_frame()
    frame.insert(0, "customerID", [f"{i:04d}-ABCDE" for i in range(ROWS)])
    frame["row_number"] = range(ROWS)
    frame["country"] = "NZ"
    frame["notes"] = np.nan
    frame["reading"] = np.random.default_rng(1).normal(size=ROWS)  # unique, but a measurement
    draft = draft_config(csv(tmp_path, frame), "price")
    assert not {"customerID", "row_number", "country", "notes"} & set(draft.config.columns)
    assert "reading" in draft.config.numeric_columns
    assert f"  # customerID: left out: an identifier (a different value in each of the {ROWS} rows)" in draft.text
    assert "  # row_number: left out: an identifier" in draft.text
    assert "  # country: left out: one value ('NZ') in every row, nothing to learn" in draft.text
    assert "  # notes: left out: empty in every row" in draft.text
    assert "Left out: customerID (an identifier" in draft.summary


def test_observations_are_comments(tmp_path):
    frame = mixed_frame()
    frame.loc[:9, "area"] = np.nan
    draft = draft_config(csv(tmp_path, frame), "price")
    low, high = int(frame.area.min()), int(frame.area.max())
    distinct = frame.area.nunique()
    line = next(line for line in draft.text.splitlines() if line.startswith("  area:"))
    assert line.endswith(f"# {low} to {high}, {distinct} distinct, 5.0% null")
    assert draft.config.columns["area"].max_null_fraction == 0.1


def test_a_positive_skewed_target_is_fitted_on_its_log(tmp_path):
    config = draft_config(csv(tmp_path, mixed_frame()), "price").config
    assert config.task == "regression"
    assert config.target.transform == "log" and config.registry.metric == "test_rmsle"
    assert config.training.search_space[0].estimator == "hist_gradient_boosting"


def test_a_signed_target_is_judged_by_rmse(tmp_path):
    config = draft_config(csv(tmp_path, mixed_frame()), "temperature").config
    assert config.task == "regression"
    assert config.target.transform == "none" and config.registry.metric == "test_rmse"


def test_a_text_target_is_classification_with_the_yes_class_last(tmp_path):
    frame = mixed_frame()
    frame["left"] = (["Yes"] * 150 + ["No"] * 50)[:ROWS]  # "Yes" reads as the event, though commoner
    config = draft_config(csv(tmp_path, frame), "left").config
    assert config.task == "classification"
    assert config.target.classes == ["No", "Yes"] and config.registry.metric == "test_roc_auc"
    assert {c.estimator for c in config.training.search_space} == {"logistic_regression", "hist_gradient_boosting"}


def test_without_a_yes_class_the_rarer_one_is_positive(tmp_path):
    frame = mixed_frame()
    frame["outcome"] = (["stayed"] * 150 + ["moved"] * 50)[:ROWS]
    assert draft_config(csv(tmp_path, frame), "outcome").config.target.classes == ["stayed", "moved"]


def test_numeric_codes_are_classes_as_text_unless_overridden(tmp_path):
    data = csv(tmp_path, mixed_frame())
    assert draft_config(data, "flag").config.target.classes == ["0", "1"]
    overridden = draft_config(data, "flag", task="regression").config
    assert overridden.task == "regression" and overridden.registry.metric == "test_rmse"


def test_a_parquet_file_is_drafted_as_its_types_say(tmp_path):
    frame = mixed_frame()
    frame["has_pool"] = frame.flag == 1  # a boolean is sent as true/false: a level, not a number
    frame["flag"] = frame.flag.astype("float64")
    path = tmp_path / "houses.parquet"
    frame.to_parquet(path)
    config = draft_config(str(path), "flag").config
    assert config.name == "houses" and config.target.classes == ["0", "1"]
    assert config.columns["has_pool"].categories == ["False", "True"]


@pytest.mark.parametrize(
    "target, message",
    [
        ("Price", r"has no target column 'Price'; close names: price$"),
        ("cost", r"has no target column 'cost'; its columns: area, temperature, flag, colour, price$"),
    ],
)
def test_a_missing_target_is_refused_with_close_names(tmp_path, target, message):
    with pytest.raises(DraftError, match=message):
        draft_config(csv(tmp_path, mixed_frame()), target)


def test_a_target_with_one_value_is_refused(tmp_path):
    frame = mixed_frame().assign(label="yes")
    with pytest.raises(DraftError, match=r"target 'label' in .*data\.csv holds one value \('yes'\) in every row"):
        draft_config(csv(tmp_path, frame), "label")


def test_an_empty_target_is_refused(tmp_path):
    frame = mixed_frame().assign(label=np.nan)
    with pytest.raises(DraftError, match=r"target 'label' in .*data\.csv is empty in every row"):
        draft_config(csv(tmp_path, frame), "label")


def test_more_than_two_classes_are_refused_naming_them(tmp_path):
    frame = mixed_frame()
    frame["grade"] = (["a", "b", "c", "d"] * ROWS)[:ROWS]
    frame["stars"] = ([1, 2, 3, 4, 5] * ROWS)[:ROWS]
    data = csv(tmp_path, frame)
    with pytest.raises(DraftError, match=r"holds 4 classes \('a', 'b', 'c', 'd'\); .*two-class classification only$"):
        draft_config(data, "grade")
    with pytest.raises(DraftError, match=r"holds 5 classes .*; to predict it as a number pass --task regression$"):
        draft_config(data, "stars")
    assert draft_config(data, "stars", task="regression").config.task == "regression"


def test_a_text_target_cannot_be_regressed(tmp_path):
    frame = mixed_frame()
    with pytest.raises(DraftError, match=r"target 'colour' in .* is text \('\w+' in row 1\), not a number"):
        draft_config(csv(tmp_path, frame), "colour", task="regression")


@pytest.mark.parametrize(
    "content, error, message",
    [
        ("", IngestError, r"is empty \(0 bytes\)"),
        ("area,price\n", IngestError, "has a header but no data rows"),
        ("price\n1\n2\n", DraftError, r"has no columns besides the target 'price': nothing to learn from"),
        (
            "id,country,price\n" + "".join(f"{i},NZ,{i * 1000 + 7}\n" for i in range(1, 31)),
            DraftError,
            r"no usable columns besides the target 'price': id left out: an identifier .*; country left out: one value",
        ),
    ],
)
def test_a_file_with_nothing_to_learn_from_is_refused(tmp_path, content, error, message):
    path = tmp_path / "data.csv"
    path.write_text(content)
    with pytest.raises(error, match=message):
        draft_config(str(path), "price")


def test_rows_without_a_target_are_warned_about(tmp_path):
    frame = mixed_frame()
    frame.loc[:2, "price"] = np.nan
    draft = draft_config(csv(tmp_path, frame), "price")
    assert draft.warnings == ["3 row(s) have no price: validation refuses the file until they are filled or removed."]
    assert draft.summary.endswith(draft.warnings[0])


def test_awkward_names_and_levels_survive_the_yaml(tmp_path):
    frame = mixed_frame()
    frame["No"] = (["yes", "No", "WD ", "a # b", "null"] * ROWS)[:ROWS]
    frame["a # b: c"] = frame.area
    draft = draft_config(csv(tmp_path, frame), "price")
    assert draft.config.columns["No"].categories == ["No", "WD ", "a # b", "null", "yes"]
    assert "a # b: c" in draft.config.numeric_columns
    assert parse_config(yaml.safe_load(draft.text)) == draft.config


def test_the_written_file_loads_as_the_drafted_config(tmp_path):
    draft = draft_config(str(TELCO_DATA), "churn")
    out = write_draft(draft, tmp_path / "configs" / "churn.yaml")
    assert out.read_text() == draft.text and draft.text.startswith("# A draft config for ")
    assert load_config(out) == draft.config
    assert [p.name for p in out.parent.iterdir()] == ["churn.yaml"]  # no scratch file left behind


def test_an_existing_file_is_kept_unless_forced(tmp_path):
    draft = draft_config(csv(tmp_path, mixed_frame()), "price")
    out = tmp_path / "mine.yaml"
    out.write_text("# my hand-written config\n")
    with pytest.raises(DraftError, match=r"mine\.yaml already exists; pass --force to replace it"):
        write_draft(draft, out)
    assert out.read_text() == "# my hand-written config\n"
    write_draft(draft, out, force=True)
    assert load_config(out) == draft.config


@pytest.mark.parametrize(
    "data, target, checks",
    [
        (AMES_DATA, "Sale_Price", {"task": "regression", "columns": 73, "metric": "test_rmsle"}),
        (TELCO_DATA, "churn", {"task": "classification", "columns": 19, "metric": "test_roc_auc"}),
    ],
)
def test_bundled_data_passes_validation_under_its_draft(data, target, checks):
    """The draft describes the file it came from: the pipeline's validate step accepts it."""
    config = draft_config(str(data), target).config
    assert (config.task, len(config.columns), config.registry.metric) == (
        checks["task"],
        checks["columns"],
        checks["metric"],
    )
    frame = ingest_table(str(data), text_columns_of(config)).frame
    report = validate_frame(frame, config, str(data))
    assert report.passed, report.violations
    assert not report.warnings


@pytest.mark.parametrize(
    "uri, name, target, model",
    [
        ("data/ames.csv.gz", "ames", "Sale_Price", "ames-sale-price"),
        ("s3://bucket/raw/Telco-Churn.parquet", "telco_churn", "churn", "telco-churn"),
        ("./2024 sales.csv", "2024_sales", "Units Sold", "2024-sales-units-sold"),
    ],
)
def test_names_come_from_the_file_and_target(uri, name, target, model):
    assert dataset_name(uri) == name
    assert model_name(name, target) == model


def test_command_line_writes_and_summarises(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    data = csv(tmp_path, mixed_frame(), "houses.csv")
    assert main(["--data", data, "--target", "price"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0] == "wrote configs/houses.yaml"
    assert " ".join(out[1:]).startswith("houses: 200 rows, 3 numeric and 1 categorical columns.")
    assert load_config(tmp_path / "configs" / "houses.yaml").registry.model_name == "houses-price"


@pytest.mark.parametrize(
    "args, message",
    [
        (["--target", "Price"], "has no target column 'Price'; close names: price"),
        (["--target", "price", "--task", "ranking"], "argument --task: invalid choice: 'ranking'"),
        (["--target", "colour", "--task", "regression"], "target 'colour' in"),
        (["--target", "price", "--out", "existing.yaml"], "existing.yaml already exists; pass --force"),
    ],
)
def test_command_line_refusals_are_one_line_with_exit_code_2(tmp_path, capsys, monkeypatch, args, message):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "existing.yaml").write_text("kept\n")
    data = csv(tmp_path, mixed_frame())
    assert main(["--data", data, *args]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err.startswith("init-config: ") and message in captured.err
    assert captured.err.count("\n") == 1
    assert (tmp_path / "existing.yaml").read_text() == "kept\n"
    assert not (tmp_path / "configs").exists()
