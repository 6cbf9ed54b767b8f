"""The `monitoring` section of a data-set config."""

import pytest

from lifecycle.dataset.config import ConfigError, Monitoring, parse_config


def test_bundled_configs_need_no_monitoring_section(ames_config, telco_config):
    for config in (ames_config, telco_config):
        assert config.monitoring == Monitoring()
    defaults = Monitoring()
    assert (defaults.psi, defaults.prediction_psi, defaults.min_drifted_columns) == (0.2, 0.2, 1)


def _with(config, monitoring: dict):
    raw = config.model_dump(mode="json")
    raw["monitoring"] = monitoring
    return parse_config(raw)


def test_per_column_threshold_overrides_the_section(ames_config):
    config = _with(ames_config, {"psi": 0.3, "columns": {"Gr_Liv_Area": {"psi": 0.5}, "Neighborhood": {}}})
    assert config.monitoring.thresholds("Gr_Liv_Area")["psi"] == 0.5
    assert config.monitoring.thresholds("Neighborhood")["psi"] == 0.3
    assert config.monitoring.thresholds("Lot_Area") == {
        "psi": 0.3,
        "null_increase": 0.1,
        "unseen_fraction": 0.01,
        "out_of_range_fraction": 0.01,
    }


@pytest.mark.parametrize(
    ("monitoring", "message"),
    [
        ({"psi": -0.1}, r"monitoring\.psi: Input should be greater than or equal to 0"),
        ({"prediction_psi": float("nan")}, r"monitoring\.prediction_psi: Input should be a finite number"),
        ({"unseen_fraction": 1.5}, r"monitoring\.unseen_fraction: Input should be less than or equal to 1"),
        ({"null_increase": True}, r"monitoring\.null_increase: must be a number, not True"),
        ({"min_drifted_columns": 0}, r"monitoring\.min_drifted_columns: Input should be greater than or equal to 1"),
        ({"psy": 0.1}, r"monitoring\.psy: unknown field"),
        ({"columns": {"Gr_Liv_Area": {"psi": -1}}}, r"monitoring\.columns\.Gr_Liv_Area\.psi: Input should be greater"),
        ({"columns": {"Gr_Liv_Area": {"psi": float("nan")}}}, r"monitoring\.columns\.Gr_Liv_Area\.psi: .*finite"),
        ({"columns": {"Gr_Liv_Area": {"max_psi": 1}}}, r"monitoring\.columns\.Gr_Liv_Area\.max_psi: unknown field"),
        ({"columns": {"Gr_Liv_Areaa": {"psi": 0.3}}}, r"monitoring\.columns names 'Gr_Liv_Areaa', which is not"),
        (
            {"columns": {"Gr_Liv_Area": {"unseen_fraction": 0.1}}},
            r"monitoring\.columns\.Gr_Liv_Area\.unseen_fraction applies to categorical columns only",
        ),
        (
            {"columns": {"Neighborhood": {"out_of_range_fraction": 0.1}}},
            r"monitoring\.columns\.Neighborhood\.out_of_range_fraction applies to numeric columns only",
        ),
    ],
)
def test_bad_thresholds_are_named(ames_config, monitoring, message):
    with pytest.raises(ConfigError, match=message):
        _with(ames_config, monitoring)
