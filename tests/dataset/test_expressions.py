"""Derived-feature expressions: the same numbers as DataFrame.eval, and nothing but arithmetic."""

import numpy as np
import pandas as pd
import pytest

from lifecycle.dataset.config import ConfigError, config_as_json, parse_config
from lifecycle.dataset.expressions import ExpressionError, column_names, evaluate


def test_same_numbers_as_dataframe_eval(ames_raw, ames_config):
    for expression in [*ames_config.features.derived.values(), "-(Lot_Area / (Gr_Liv_Area + 1)) ** 2 * 0.5"]:
        expected = ames_raw.eval(expression, engine="python").astype("float64").to_numpy()
        np.testing.assert_array_equal(evaluate(expression, ames_raw), expected)


def test_missing_values_stay_missing_and_constants_broadcast():
    frame = pd.DataFrame({"a": [1.0, None, 3.0]})
    np.testing.assert_array_equal(evaluate("a * 2", frame), [2.0, np.nan, 6.0])
    np.testing.assert_array_equal(evaluate("2 + 3", frame), [5.0, 5.0, 5.0])


@pytest.mark.parametrize(
    "expression, problem",
    [
        ("__import__('os').system('true')", "only column names, numbers"),
        ("a.b", "only column names, numbers"),
        ("a if b else c", "only column names, numbers"),
        ("'text' + a", "only column names, numbers"),
        ("a +", "is not an arithmetic expression"),
    ],
)
def test_anything_but_arithmetic_is_refused(expression, problem):
    with pytest.raises(ExpressionError, match=problem):
        column_names(expression)


def test_a_column_the_data_lacks_is_named():
    with pytest.raises(ExpressionError, match="reads column 'b', which the data does not have"):
        evaluate("a + b", pd.DataFrame({"a": [1.0]}))


def test_config_names_the_bad_derived_feature(ames_config):
    raw = ames_config.model_dump(mode="json")
    raw["features"]["derived"] = {
        "Ok": "Lot_Area * 2",
        "Uses_Ok": "Ok + 1",
        "Typo": "Lot_Areaa + 1",
        "Code": "open('x')",
    }
    with pytest.raises(ConfigError) as refused:
        parse_config(raw)
    message = str(refused.value)
    assert "features.derived.Typo reads unknown column(s) 'Lot_Areaa'" in message
    assert "features.derived.Code: \"open('x')\": only column names" in message
    assert "Uses_Ok" not in message


def test_bundled_configs_parse(ames_config, telco_config):
    for config in (ames_config, telco_config):
        assert parse_config(config_as_json(config)) == config
