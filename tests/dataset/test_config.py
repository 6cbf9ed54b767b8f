import json
import math

import pytest

from lifecycle.dataset.config import (
    ConfigError,
    check_margin,
    config_as_json,
    load_config,
    parse_config,
)


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
        with pytest.raises(
            ConfigError, match=r"target\.classes must list exactly two distinct labels, the positive one last"
        ):
            parse_config(raw)


def test_derived_feature_may_not_read_a_categorical_column(ames_config):
    raw = ames_config.model_dump(mode="json")
    raw["features"]["derived"]["Area_Street"] = "Lot_Area + Street"
    with pytest.raises(
        ConfigError,
        match=r"features\.derived\.Area_Street \('Lot_Area \+ Street'\) reads categorical column\(s\) 'Street'",
    ):
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


@pytest.mark.parametrize(
    "margin", [-0.01, -1, float("nan"), float("inf"), float("-inf"), "nan", "1e309", True, None, "much"]
)
def test_a_margin_that_would_promote_a_worse_model_or_none_is_refused(ames_config, margin):
    raw = ames_config.model_dump(mode="json")
    raw["registry"]["margin"] = margin
    with pytest.raises(
        ConfigError, match=r"registry\.margin: registry\.margin must be a finite number at least 0 .*not "
    ):
        parse_config(raw)


def test_a_margin_in_a_yaml_file_is_checked(tmp_path, ames_config):
    raw = ames_config.model_dump(mode="json")
    text = json.dumps(raw).replace('"margin": 0.0', '"margin": -0.5')  # JSON is YAML
    path = tmp_path / "config.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=r"registry\.margin must be a finite number at least 0 .*not -0\.5"):
        load_config(path)
    path.write_text(text.replace('"margin": -0.5', '"margin": .inf'))
    with pytest.raises(ConfigError, match=r"not inf"):
        load_config(path)


@pytest.mark.parametrize(("value", "margin"), [(0, 0.0), (0.01, 0.01), ("0.02", 0.02), ("-0", 0.0), (2, 2.0)])
def test_check_margin_takes_finite_numbers_at_least_zero(value, margin):
    checked = check_margin(value, "promotion_margin")
    assert checked == margin and isinstance(checked, float) and math.copysign(1, checked) == 1


@pytest.mark.parametrize("value", [-1e-9, float("nan"), float("inf"), "-0.1", "inf", "", False])
def test_check_margin_names_where_the_value_came_from(value):
    with pytest.raises(ConfigError) as refused:
        check_margin(value, "pipeline parameter promotion_margin")
    assert str(refused.value).startswith("pipeline parameter promotion_margin must be a finite number at least 0")
    assert str(refused.value).endswith(f"not {value!r}")
