import json
import math

import numpy as np
import pandas as pd
import pytest

from lifecycle.monitoring.profile import FORMAT, ProfileError, build_profile, load_profile


def test_profile_is_small_json_that_reads_back(telco, ames):
    for fitted in (telco, ames):
        text = json.dumps(fitted.profile)
        assert len(text) < 20_000, f"{fitted.config.name}: a profile of {len(text):,} characters"
        profile = load_profile(text)
        assert profile.format == FORMAT and profile.rows == len(fitted.train)
        assert list(profile.numeric) == fitted.config.numeric_columns
        assert list(profile.categorical) == fitted.config.categorical_columns


def test_numeric_bins_are_training_deciles(ames):
    column = ames.profile["numeric"]["Gr_Liv_Area"]
    assert column["min"] == ames.train.Gr_Liv_Area.min() and column["max"] == ames.train.Gr_Liv_Area.max()
    assert len(column["edges"]) == 9 and column["null_fraction"] == 0
    # Independently of the module: pandas' right-closed bins over the same edges hold ~10 % each.
    bins = pd.cut(ames.train.Gr_Liv_Area, [-np.inf, *column["edges"], np.inf], right=True)
    counted = bins.value_counts(normalize=True, sort=False).to_numpy()
    np.testing.assert_allclose(column["shares"], counted, atol=1e-6)
    assert all(0.08 < share < 0.12 for share in counted)


def test_a_value_filling_many_deciles_makes_one_edge(ames):
    pool = ames.profile["numeric"]["Pool_Area"]  # almost every house has no pool
    assert pool["edges"] == [0.0] and pool["shares"][0] > 0.99


def test_categorical_shares_pool_rare_levels(ames, telco):
    contract = telco.profile["categorical"]["contract"]
    expected = telco.train.contract.value_counts(normalize=True)
    assert contract["shares"] == pytest.approx(expected.to_dict(), abs=1e-6) and contract["other"] == 0
    neighborhood = ames.profile["categorical"]["Neighborhood"]
    rare = ames.train.Neighborhood.value_counts(normalize=True)
    assert set(neighborhood["other_levels"]) == set(rare[rare < 0.01].index)
    assert math.isclose(neighborhood["other"], rare[rare < 0.01].sum(), abs_tol=1e-5)
    assert math.isclose(sum(neighborhood["shares"].values()) + neighborhood["other"], 1, abs_tol=1e-5)


def test_prediction_distribution(telco, ames):
    prediction = telco.profile["prediction"]
    assert prediction["kind"] == "probability" and prediction["label"] == "Yes"
    assert 0 <= prediction["min"] <= prediction["max"] <= 1
    assert ames.profile["prediction"]["kind"] == "value" and ames.profile["prediction"]["label"] is None


def test_predictions_must_be_the_positive_class_probability(telco):
    labels = telco.model.predict(telco.train)
    with pytest.raises(ValueError, match=r"predictions must be numbers \(the probability of 'Yes'\); got 'No'"):
        build_profile(telco.train, labels, telco.config)
    with pytest.raises(ValueError, match=r"one number per row .*shape \(\d+, 2\)"):
        build_profile(telco.train, telco.model.predict_proba(telco.train), telco.config)
    with pytest.raises(ValueError, match=r"probabilities of 'Yes' in \[0, 1\]; got 2.0"):
        build_profile(telco.train, np.full(len(telco.train), 2.0), telco.config)


def test_scored_frame_is_read_by_column_name(telco):
    from lifecycle.scoring.batch import predict_frame

    frame = predict_frame(telco.model, telco.train)
    assert build_profile(telco.train, frame, telco.config) == telco.profile


def test_missing_input_column_is_named(telco):
    with pytest.raises(ValueError, match="lack the input column\\(s\\) 'contract'"):
        build_profile(telco.train.drop(columns=["contract"]), telco.predict(telco.train), telco.config)


def _broken(profile: dict, path: str, value) -> dict:
    """A deep copy of `profile` with the field at dotted `path` set to `value` (or removed for ...)."""
    copy = json.loads(json.dumps(profile))
    *parents, last = path.split(".")
    node = copy
    for part in parents:
        node = node[part]
    if value is ...:
        del node[last]
    else:
        node[last] = value
    return copy


@pytest.mark.parametrize(
    ("path", "value", "message"),
    [
        ("format", 2, r"format: profile format 2 is not one this code reads \(1\)"),
        ("rows", ..., r"rows: Field required"),
        ("numeric.tenure.edges", [3.0, 1.0], r"numeric\.tenure: edges must be strictly increasing"),
        ("numeric.tenure.shares", [0.5, 0.5], r"numeric\.tenure: \d+ edges make \d+ bins, not 2 shares"),
        (
            "numeric.tenure.null_fraction",
            1.5,
            r"numeric\.tenure\.null_fraction: Input should be less than or equal to 1",
        ),
        ("numeric.tenure.min", "NaN", r"numeric\.tenure\.min: Input should be a finite number"),
        ("numeric.tenure.bins", 10, r"numeric\.tenure\.bins: unknown field"),
        (
            "categorical.contract.shares",
            {"Month-to-month": 0.9},
            r"categorical\.contract: shares and other must add up to 1",
        ),
        ("categorical.contract.shares", ["a"], r"categorical\.contract\.shares: Input should be a valid dictionary"),
        ("prediction.kind", "value", r"prediction\.kind 'value' does not fit task 'classification'"),
        ("prediction.rows", 0, r"prediction\.rows: Input should be greater than or equal to 1"),
    ],
)
def test_malformed_profile_is_refused_naming_the_field(telco, path, value, message):
    with pytest.raises(ProfileError, match=message):
        load_profile(_broken(telco.profile, path, value))


def test_profile_that_is_not_a_mapping_is_refused():
    with pytest.raises(ProfileError, match="not valid JSON"):
        load_profile("{nope")
    with pytest.raises(ProfileError, match="must be a mapping of profile fields, not list"):
        load_profile("[1, 2]")
    with pytest.raises(ProfileError, match="characters; a profile is at most"):
        load_profile(" " * 6_000_000)
