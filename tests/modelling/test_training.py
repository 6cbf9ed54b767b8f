import numpy as np
import pytest
from sklearn.pipeline import Pipeline

from lifecycle.dataset.process import process_frame, split_frame
from lifecycle.modelling.estimators import (
    SearchSpaceError,
    build_estimator,
    expand_search_space,
)
from lifecycle.modelling.features import build_featurizer, features_and_target
from lifecycle.modelling.training import (
    cross_validate_candidate,
    fit_model,
    select_best,
)
from tests.conftest import quick


@pytest.fixture(scope="module")
def telco_split(telco_raw, telco_config):
    return split_frame(process_frame(telco_raw, telco_config), telco_config)


def test_search_space_expands_in_order(ames_config):
    ids = [c["id"] for c in expand_search_space(ames_config)]
    assert ids == ["00-hist_gradient_boosting", "01-hist_gradient_boosting", "02-ridge", "03-ridge"]


def test_unknown_estimator_and_parameter_are_named(ames_config):
    with pytest.raises(SearchSpaceError, match="unknown estimator 'xgboost'"):
        expand_search_space(quick(ames_config, search_space=[{"estimator": "xgboost"}]))
    with pytest.raises(SearchSpaceError, match="ridge: .*'alpah'"):
        expand_search_space(quick(ames_config, search_space=[{"estimator": "ridge", "params": {"alpah": [1]}}]))
    with pytest.raises(SearchSpaceError, match="does not support task 'regression'"):
        expand_search_space(quick(ames_config, search_space=[{"estimator": "logistic_regression"}]))


def test_log_target_wraps_the_regressor(ames_config):
    estimator = build_estimator({"estimator": "ridge", "params": {}}, ames_config)
    assert type(estimator).__name__ == "TransformedTargetRegressor" and estimator.func is np.log


def test_featurizer_handles_unknown_categories(telco_split, telco_config):
    train, test = telco_split
    X, _ = features_and_target(train, telco_config)
    featurizer = build_featurizer(telco_config).fit(X)
    unseen = features_and_target(test, telco_config)[0].head(3).assign(contract="Three year")
    assert featurizer.transform(unseen).shape[0] == 3
    assert "charges_per_month_of_tenure" in featurizer.named_steps["prepare"].transform(unseen)


def test_cross_validation_and_selection(telco_split, telco_config):
    train, _ = telco_split
    X, _ = features_and_target(train, telco_config)
    featurizer = build_featurizer(telco_config).fit(X)
    candidates = expand_search_space(telco_config)[:2]
    results = [cross_validate_candidate(train, featurizer, c, telco_config) for c in candidates]
    assert all(r["metric"] == "cv_roc_auc" and 0.8 < r["mean"] < 0.9 for r in results)
    best = select_best(results, telco_config)
    assert best["mean"] == max(r["mean"] for r in results)
    tie = [dict(results[1], mean=0.5), dict(results[0], mean=0.5)]
    assert select_best(tie, telco_config)["candidate"]["id"] == candidates[0]["id"]


def test_fitted_model_is_one_pipeline_on_raw_columns(telco_split, telco_config):
    train, test = telco_split
    X, _ = features_and_target(train, telco_config)
    featurizer = build_featurizer(telco_config).fit(X)
    model = fit_model(train, featurizer, expand_search_space(telco_config)[0], telco_config)
    assert isinstance(model, Pipeline) and list(model.named_steps) == ["features", "model"]
    raw = features_and_target(test, telco_config)[0]
    assert set(model.predict(raw)) <= {"No", "Yes"}


def test_level_meaning_blanks_are_filled_inside_the_model(ames_raw, ames_config):
    """Raw rows with an empty veneer type score the same as rows that say "None"."""
    train, test = split_frame(process_frame(ames_raw, ames_config), ames_config)
    assert train["Mas_Vnr_Type"].isna().any()
    X, _ = features_and_target(train, ames_config)
    featurizer = build_featurizer(ames_config).fit(X)
    model = fit_model(train, featurizer, {"estimator": "ridge", "params": {}}, ames_config)
    rows = features_and_target(test, ames_config)[0].head(20)
    blank = rows.assign(Mas_Vnr_Type=None)
    assert (model.predict(blank) == model.predict(blank.assign(Mas_Vnr_Type="None"))).all()


def test_a_candidate_that_cannot_be_scored_is_never_chosen(ames_raw, ames_config, monkeypatch):
    """sklearn scores a fold it cannot score as NaN (e.g. RMSLE of negative predictions), and a NaN
    listed first used to win both min and max comparisons."""
    import lifecycle.modelling.training as training

    config = quick(ames_config)
    train, _ = split_frame(process_frame(ames_raw, config), config)
    featurizer = build_featurizer(config).fit(features_and_target(train, config)[0])
    candidate = expand_search_space(config)[0]
    working = cross_validate_candidate(train, featurizer, candidate, config)

    def negative_predictions_scorer(estimator, X, y):
        raise ValueError(
            "Root Mean Squared Logarithmic Error cannot be used when targets contain values less than or equal to -1."
        )

    monkeypatch.setattr(training, "cv_scorer", lambda config: negative_predictions_scorer)
    broken = cross_validate_candidate(train, featurizer, dict(candidate, id="00-first"), config)
    assert broken["mean"] is None and broken["std"] is None
    assert (
        broken["error"]
        == "3 of 3 folds could not be scored: ValueError: Root Mean Squared Logarithmic Error cannot be used when "
        "targets contain values less than or equal to -1."
    )
    assert working["error"] is None and working["mean"] > 0
    assert select_best([broken, working], config) is working
    with pytest.raises(ValueError, match=r"no candidate could be cross-validated: 00-first: 3 of 3 folds"):
        select_best([broken], config)


@pytest.mark.parametrize("task", ["regression", "classification"])
def test_every_estimator_family_survives_the_trusted_round_trip(task, telco_split, telco_config, ames_raw, ames_config):
    """A family a config can name must be one the pipeline can carry between steps and register."""
    from lifecycle.modelling.estimators import ESTIMATORS
    from lifecycle.modelling.serialization import model_bytes, model_from_bytes

    config = telco_config if task == "classification" else ames_config
    train = telco_split[0] if task == "classification" else split_frame(process_frame(ames_raw, config), config)[0]
    train = train.head(300)
    X, _ = features_and_target(train, config)
    families = sorted(name for name, tasks in ESTIMATORS.items() if task in tasks)
    for family in families:
        small = {"random_forest": {"n_estimators": 2}, "hist_gradient_boosting": {"max_iter": 5}}.get(family, {})
        candidate = {"id": family, "estimator": family, "params": small}
        model = fit_model(train, build_featurizer(config).fit(X), candidate, config)
        loaded = model_from_bytes(model_bytes(model), family)
        np.testing.assert_array_equal(loaded.predict(X), model.predict(X), err_msg=family)
