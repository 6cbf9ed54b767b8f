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
