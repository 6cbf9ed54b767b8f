import numpy as np
import pandas as pd
import pytest

from lifecycle.validate import DataValidationError, validate_frame


def violations(frame, config):
    return [str(v) for v in validate_frame(frame, config, "data.csv").violations]


def test_bundled_data_passes(ames_raw, ames_config, telco_raw, telco_config):
    for frame, config in ((ames_raw, ames_config), (telco_raw, telco_config)):
        report = validate_frame(frame, config, "bundled")
        assert report.passed, report.to_markdown()
        assert report.checked_columns == len(config.columns)


def test_missing_required_column(ames_raw, ames_config):
    assert violations(ames_raw.drop(columns=["Lot_Area"]), ames_config) == ["Lot_Area: required: required column is missing"]


def test_text_in_numeric_column(ames_raw, ames_config):
    frame = ames_raw.copy()
    frame["Gr_Liv_Area"] = frame["Gr_Liv_Area"].astype(object)
    frame.loc[3, "Gr_Liv_Area"] = "large"
    assert violations(frame, ames_config) == [
        "Gr_Liv_Area: dtype: expected numbers, found text in 1 row(s): 'large'"
    ]


def test_target_all_empty(ames_raw, ames_config):
    frame = ames_raw.assign(Sale_Price=np.nan)
    assert violations(frame, ames_config) == ["Sale_Price: target: target is empty in every row"]


def test_negative_prices_are_out_of_range(ames_raw, ames_config):
    frame = ames_raw.copy()
    frame.loc[:4, "Sale_Price"] = -1000
    found = violations(frame, ames_config)
    assert "Sale_Price: range: 5 value(s) below minimum 1: -1000" in found


def test_nulls_over_the_limit(telco_raw, telco_config):
    frame = telco_raw.copy()
    frame.loc[: len(frame) // 2, "tenure"] = np.nan
    assert any(v.startswith("tenure: nulls: 50.0% missing") for v in violations(frame, telco_config))


def test_level_meaning_blanks_are_not_nulls(ames_raw, ames_config):
    """Misc_Feature is 96% empty, and empty means "None": that passes."""
    assert ames_raw["Misc_Feature"].isna().mean() > 0.9
    assert validate_frame(ames_raw, ames_config, "x").passed


def test_unseen_category_is_a_warning_not_a_violation(telco_raw, telco_config):
    frame = telco_raw.copy()
    frame.loc[0, "contract"] = "Three year"
    report = validate_frame(frame, telco_config, "x")
    assert report.passed
    assert [str(w) for w in report.warnings] == ["contract: categories: 1 value(s) outside the known levels: 'Three year'"]
    assert "| `contract` | categories |" in report.to_markdown()


def test_unknown_label_and_duplicates(telco_raw, telco_config):
    frame = telco_raw.copy()
    frame.loc[0, "churn"] = "Maybe"
    frame = pd.concat([frame, frame.iloc[1:201]], ignore_index=True)
    found = violations(frame, telco_config)
    assert "churn: classes: 1 label(s) not in ['No', 'Yes']: 'Maybe'" in found
    assert any(v.startswith("(table): duplicates:") for v in found)


def test_one_error_names_every_violation(ames_raw, ames_config):
    frame = ames_raw.drop(columns=["Lot_Area", "Neighborhood"]).head(100)
    report = validate_frame(frame, ames_config, "ames.csv")
    with pytest.raises(DataValidationError) as failure:
        report.raise_if_failed()
    message = str(failure.value)
    assert message.startswith("ames.csv failed validation with 3 violation(s):")
    for part in ("(table): min_rows: 100 rows", "Lot_Area: required", "Neighborhood: required"):
        assert part in message
    assert "# Data validation: FAILED" in report.to_markdown()
