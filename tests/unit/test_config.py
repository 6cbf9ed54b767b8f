import json

import pytest

from lifecycle.config import ConfigError, config_as_json, load_config, parse_config


def test_bundled_configs_load(ames_config, telco_config):
    assert ames_config.task == "regression" and ames_config.target.name == "Sale_Price"
    assert telco_config.task == "classification" and telco_config.target.classes == ["No", "Yes"]
    assert "Total_SF" in ames_config.features.derived


def test_unknown_key_is_named(ames_config):
    raw = ames_config.model_dump(mode="json")
    raw["validation"]["max_nul_fraction"] = 0.1
    with pytest.raises(ConfigError, match=r"validation\.max_nul_fraction: unknown field"):
        parse_config(raw)


def test_missing_required_field_is_named(ames_config):
    raw = ames_config.model_dump(mode="json")
    del raw["registry"]["model_name"]
    with pytest.raises(ConfigError, match=r"registry\.model_name: Field required"):
        parse_config(raw)


def test_metric_must_fit_task(telco_config):
    raw = telco_config.model_dump(mode="json")
    raw["registry"]["metric"] = "test_rmse"
    with pytest.raises(ConfigError, match="does not fit task 'classification'"):
        parse_config(raw)


def test_references_to_unknown_columns_are_named(ames_config):
    raw = ames_config.model_dump(mode="json")
    raw["processing"]["clip"]["Lot_Aera"] = [None, 10]
    with pytest.raises(ConfigError, match="processing.clip names unknown column 'Lot_Aera'"):
        parse_config(raw)


def test_json_form_keeps_integers(ames_config):
    """Search-space integers must arrive as ints: sklearn refuses max_iter=600.0."""
    text = config_as_json(ames_config)
    again = parse_config(text)
    assert again == ames_config
    params = json.loads(text)["training"]["search_space"][0]["params"]
    assert params["max_iter"] == [600] and isinstance(params["max_iter"][0], int)


def test_missing_and_malformed_files(tmp_path):
    with pytest.raises(ConfigError, match="config file not found"):
        load_config(tmp_path / "nope.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("- just\n- a list\n")
    with pytest.raises(ConfigError, match="must be a mapping"):
        load_config(bad)
    with pytest.raises(ConfigError, match="not valid JSON"):
        parse_config("{not json")


def test_classification_needs_exactly_two_classes(telco_config):
    """Evaluation is binary (the positive class last), so a third label would fail in CV."""
    raw = telco_config.model_dump(mode="json")
    for classes in (["No", "Maybe", "Yes"], ["Yes", "Yes"], ["Yes"]):
        raw["target"]["classes"] = classes
        with pytest.raises(ConfigError, match=r"target\.classes must list exactly two distinct labels, the positive one last"):
            parse_config(raw)


def test_derived_feature_may_not_read_a_categorical_column(ames_config):
    raw = ames_config.model_dump(mode="json")
    raw["features"]["derived"]["Area_Street"] = "Lot_Area + Street"
    with pytest.raises(ConfigError, match=r"features\.derived\.Area_Street \('Lot_Area \+ Street'\) reads categorical column\(s\) 'Street'"):
        parse_config(raw)


def test_bounds_in_the_wrong_order_are_named(ames_config):
    raw = ames_config.model_dump(mode="json")
    raw["columns"]["Year_Built"].update(min=2030, max=1800)
    raw["target"]["max"] = 0
    raw["processing"]["clip"]["Lot_Area"] = [100000, 0]
    with pytest.raises(ConfigError) as failure:
        parse_config(raw)
    message = str(failure.value)
    for part in (
        "columns.Year_Built: min 2030 is above max 1800",
        "target: min 1 is above max 0",
        "processing.clip.Lot_Area: low 100000 is above high 0",
    ):
        assert part in message
    raw = ames_config.model_dump(mode="json")
    raw["columns"]["Year_Built"].update(min=2000, max=2000)
    raw["processing"]["clip"]["Lot_Area"] = [5000, 5000]
    parse_config(raw)  # equal bounds are a constant, not a contradiction
