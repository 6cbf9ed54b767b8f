import json
import math

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from lifecycle.dataset.config import Monitoring
from lifecycle.monitoring.drift import EPSILON, check_drift, psi

RESAMPLES = 20
BATCH = 500  # rows in a typical scoring batch


def test_psi_matches_the_formula_by_hand():
    # (0.25 - 0.5) ln(0.25 / 0.5) + (0.75 - 0.5) ln(0.75 / 0.5)
    assert psi([0.5, 0.5], [0.25, 0.75]) == pytest.approx(0.25 * math.log(2) + 0.25 * math.log(1.5))
    assert psi([0.2, 0.3, 0.5], [0.2, 0.3, 0.5]) == 0
    # PSI is the symmetric Kullback-Leibler divergence: scipy's, where no bin is empty.
    expected, actual = np.array([0.1, 0.2, 0.3, 0.4]), np.array([0.3, 0.3, 0.2, 0.2])
    assert psi(expected, actual) == pytest.approx(stats.entropy(actual, expected) + stats.entropy(expected, actual))
    # An empty bin counts as EPSILON, not as ln(0).
    assert psi([0.5, 0.5, 0.0], [0.5, 0.4, 0.1]) == pytest.approx(
        -0.1 * math.log(0.4 / 0.5) + (0.1 - EPSILON) * math.log(0.1 / EPSILON)
    )


def _independent_psi(train: pd.Series, scored: pd.Series, edges: list[float]) -> float:
    """PSI with pandas' binning and scipy's divergence, none of the module's code."""
    bins = [-np.inf, *edges, np.inf]
    expected = pd.cut(train, bins).value_counts(normalize=True, sort=False).to_numpy()
    actual = pd.cut(scored, bins).value_counts(normalize=True, sort=False).to_numpy()
    assert (expected > 0).all() and (actual > 0).all(), "the comparison needs every bin filled"
    return stats.entropy(actual, expected) + stats.entropy(expected, actual)


def test_month_to_month_customers_are_flagged(telco):
    scored = telco.test[telco.test.contract == "Month-to-month"]
    result = check_drift(telco.profile, scored, telco.predict(scored))
    assert result.verdict == "drifted" and result.prediction.drifted
    assert "contract" in result.drifted_columns and result.worst.name == "contract"
    assert result.columns["contract"].psi > 1
    assert result.prediction.drifted and result.prediction.psi > 0.5  # month-to-month customers churn more
    # Columns a contract says nothing about do not move.
    for name in ("female", "phone_service", "multiple_lines"):
        assert not result.columns[name].drifted, result.columns[name]
    tenure = result.columns["tenure"]
    assert tenure.psi == pytest.approx(
        _independent_psi(telco.train.tenure, scored.tenure, telco.profile["numeric"]["tenure"]["edges"]), rel=1e-4
    )


def test_living_area_grown_by_30_percent_is_flagged_on_that_column(ames):
    scored = ames.test.assign(Gr_Liv_Area=ames.test.Gr_Liv_Area * 1.3)
    result = check_drift(ames.profile, scored, ames.predict(scored))
    assert result.verdict == "drifted"
    assert list(result.drifted_columns) == ["Gr_Liv_Area"]
    column = result.columns["Gr_Liv_Area"]
    assert column.psi > 0.5 and column.reasons[0].startswith(f"PSI {column.psi:.3f} > 0.2")
    assert column.psi == pytest.approx(
        _independent_psi(ames.train.Gr_Liv_Area, scored.Gr_Liv_Area, ames.profile["numeric"]["Gr_Liv_Area"]["edges"]),
        rel=1e-4,  # the profile's shares are rounded to 6 decimals
    )
    # The two-sample Kolmogorov-Smirnov test agrees: of the numeric columns only this one moved.
    ks = {
        name: stats.ks_2samp(ames.train[name].dropna(), scored[name].dropna()) for name in ames.config.numeric_columns
    }
    assert max(ks, key=lambda name: ks[name].statistic) == "Gr_Liv_Area" and ks["Gr_Liv_Area"].pvalue < 1e-6
    unchanged = check_drift(ames.profile, ames.test, ames.predict(ames.test))
    assert unchanged.verdict == "stable", unchanged.summary()


@pytest.mark.parametrize("name", ["telco", "ames"])
def test_resamples_of_the_training_split_are_not_flagged(name, request):
    fitted = request.getfixturevalue(name)
    predictions = fitted.predict(fitted.train)
    rng = np.random.default_rng(7)
    alarms, worst = [], 0.0
    for _ in range(RESAMPLES):
        rows = rng.integers(0, len(fitted.train), BATCH)
        result = check_drift(fitted.profile, fitted.train.iloc[rows], predictions[rows])
        worst = max(worst, result.worst.psi, result.prediction.psi)
        if result.verdict != "stable":
            alarms.append(result.summary())
    assert not alarms, alarms
    assert worst < 0.15, f"a resample came close to the PSI threshold of 0.2: {worst:.3f}"


def test_holdout_split_is_stable(telco):
    result = check_drift(telco.profile, telco.test, telco.predict(telco.test))
    assert result.verdict == "stable", result.summary()


def test_blanks_unseen_categories_and_out_of_range_values(telco):
    scored = telco.test.head(BATCH).copy()
    scored.loc[scored.index[:100], "monthly_charges"] = np.nan  # 20 % blank, none in training
    scored.loc[scored.index[:10], "payment_method"] = "Crypto"  # 2 % unseen
    scored.loc[scored.index[:10], "tenure"] = 500  # 2 % above the training maximum of 72
    result = check_drift(telco.profile, scored, telco.predict(scored.fillna({"monthly_charges": 0})))
    charges, payment, tenure = (result.columns[n] for n in ("monthly_charges", "payment_method", "tenure"))
    assert charges.null_increase == pytest.approx(0.2) and any(r.startswith("blanks up") for r in charges.reasons)
    assert payment.unseen_fraction == pytest.approx(0.02) and payment.unseen_values == [("Crypto", 10)]
    assert any("unseen categories in 2% of rows > 1%" in r for r in payment.reasons)
    assert tenure.out_of_range_fraction == pytest.approx(0.02)
    assert any("outside the training range in 2% of rows > 1%" in r for r in tenure.reasons)
    assert payment.out_of_range_fraction is None and tenure.unseen_fraction is None


def test_per_column_thresholds_and_drifted_column_count(ames):
    scored = ames.test.assign(Gr_Liv_Area=ames.test.Gr_Liv_Area * 1.3)
    predictions = ames.predict(scored)
    lenient = Monitoring(columns={"Gr_Liv_Area": {"psi": 5.0}})
    assert check_drift(ames.profile, scored, predictions, lenient).verdict == "stable"
    assert check_drift(ames.profile, scored, predictions, Monitoring(min_drifted_columns=2)).verdict == "stable"
    strict = Monitoring(psi=0.0)  # any change at all
    assert check_drift(ames.profile, scored, predictions, strict).drifted_count > 10


def test_result_as_dict(telco):
    scored = telco.test[telco.test.contract == "Month-to-month"]
    result = check_drift(json.dumps(telco.profile), scored, telco.predict(scored))
    out = json.loads(json.dumps(result.to_dict()))
    assert out["verdict"] == "drifted" and out["prediction"]["drifted"] is True and out["rows"] == len(scored)
    assert out["worst_psi"]["column"] == "contract" and out["drifted_count"] == len(out["drifted_columns"])
    assert out["prediction"]["drifted"] is True and len(out["prediction"]["shares"]) == 10
    contract = out["columns"]["contract"]
    assert contract["drifted"] and contract["shares"]["Month-to-month"] == 1.0
    assert set(contract["thresholds"]) == {"psi", "null_increase", "unseen_fraction", "out_of_range_fraction"}


def test_missing_column_and_mismatched_predictions_are_named(telco):
    rows = telco.test.head(50)
    with pytest.raises(ValueError, match="lack the profiled column\\(s\\) 'contract'"):
        check_drift(telco.profile, rows.drop(columns=["contract"]), telco.predict(rows))
    with pytest.raises(ValueError, match="49 predictions for 50 scored rows"):
        check_drift(telco.profile, rows, telco.predict(rows)[:49])
