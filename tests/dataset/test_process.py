import pandas as pd

from lifecycle.dataset.process import process_frame, split_frame


def test_fill_clip_and_dtypes(ames_raw, ames_config):
    frame = process_frame(ames_raw, ames_config)
    assert frame["Lot_Area"].max() <= 100000
    assert all(frame[c].dtype == "float64" for c in ames_config.numeric_columns)
    assert all(frame[c].dtype == object for c in ames_config.categorical_columns)
    assert list(frame.columns) == list(ames_config.columns) + ["Sale_Price"]


def test_deterministic(telco_raw, telco_config):
    pd.testing.assert_frame_equal(process_frame(telco_raw, telco_config), process_frame(telco_raw, telco_config))


def test_duplicates_dropped_when_configured(ames_raw, ames_config):
    doubled = pd.concat([ames_raw, ames_raw.head(10)])
    assert len(process_frame(doubled, ames_config)) == len(ames_raw)


def test_split_is_seeded_and_stratified(telco_raw, telco_config):
    frame = process_frame(telco_raw, telco_config)
    train, test = split_frame(frame, telco_config)
    again, _ = split_frame(frame, telco_config)
    pd.testing.assert_frame_equal(train, again)
    assert len(test) == round(len(frame) * 0.2)
    rate = frame["churn"].eq("Yes").mean()
    assert abs(test["churn"].eq("Yes").mean() - rate) < 0.002
