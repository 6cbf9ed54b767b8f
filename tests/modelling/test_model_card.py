"""The model card: the numbers it is given, its decisions, its escaping, and limits found on real data."""

import html
import re
import shutil
import subprocess
import sys
import time

import pandas as pd
import pytest

from lifecycle.dataset.config import parse_config
from lifecycle.dataset.process import process_frame, split_frame
from lifecycle.modelling.estimators import expand_search_space
from lifecycle.modelling.evaluation import holdout_metrics
from lifecycle.modelling.features import build_featurizer, features_and_target
from lifecycle.modelling.model_card import (
    ModelCardFacts,
    feature_importance,
    gather_facts,
    known_limits,
    model_card_html,
)
from lifecycle.modelling.training import fit_model
from tests.conftest import quick

SCRIPT = "<script>document.body.dataset.pwned='1'</script>"
IMAGE = "<img src=x onerror=\"document.body.dataset.pwned='1'\">"


def facts(**changes) -> dict:
    """A card's facts as a plain dict, as a caller without the dataclass would give them."""
    base = {
        "model_name": "ames-house-prices",
        "version": "7",
        "dataset": "ames",
        "description": "House sale prices in Ames, Iowa, 2006-2010.",
        "task": "regression",
        "target": "Sale_Price",
        "metric": "test_rmsle",
        "data_uri": "s3://user:secret@minio:9000/data/ames.csv.gz",
        "data_sha256": "a1" * 32,
        "data_rows": 2930,
        "test_size": 0.2,
        "seed": 42,
        "train_rows": 2344,
        "holdout_rows": 586,
        "candidates": [
            {
                "id": "00-hist_gradient_boosting",
                "estimator": "hist_gradient_boosting",
                "params": {"max_iter": 600},
                "metric": "cv_rmsle",
                "mean": 0.12345,
                "std": 0.00567,
            },
            {
                "id": "01-ridge",
                "estimator": "ridge",
                "params": {"alpha": 10.0},
                "metric": "cv_rmsle",
                "mean": 0.15,
                "std": 0.02,
            },
            {"id": "02-ridge", "estimator": "ridge", "metric": "cv_rmsle", "error": "5 of 5 folds could not be scored"},
        ],
        "chosen": "00-hist_gradient_boosting",
        "holdout_metrics": {"test_rmsle": 0.11872, "test_rmse": 21345.25, "test_r2": 0.9312, "test_mae": 14001.5},
        "promotion": {
            "promote": True,
            "reason": "test_rmsle 0.11872 beats champion v6 0.12500 by more than 0",
            "metric": "test_rmsle",
            "challenger_value": 0.11872,
            "champion_version": "6",
            "champion_value": 0.125,
        },
        "aliases": ["challenger", "champion"],
        "importance": [{"feature": "Gr_Liv_Area", "mean": 0.0654, "std": 0.002}],
        "importance_metric": "rmsle",
        "known_limits": [{"column": "MS_Zoning", "kind": "rare categories", "detail": "A_agr (2)"}],
        "lineage": {"run_id": "r123", "git_commit": "deadbeef"},
    }
    return {**base, **changes}


def cells(page: str) -> list[str]:
    """The text of every table cell, tags stripped."""
    return [html.unescape(re.sub(r"<[^>]+>", "", c)).strip() for c in re.findall(r"<t[dh][^>]*>(.*?)</t[dh]>", page)]


def test_the_card_holds_the_numbers_it_is_given():
    page = model_card_html(facts())
    shown = cells(page)
    assert "Model card: ames-house-prices v7" in page
    assert "House sale prices in Ames, Iowa, 2006-2010." in shown
    assert {"regression", "Sale_Price", "a1" * 32, "2,930", "test_size 0.2, seed 42", "2,344", "586"} <= set(shown)
    assert "s3://***@minio:9000/data/ames.csv.gz" in shown and "secret" not in page  # credentials masked
    # every candidate with its CV score, the chosen one marked, a failed one with its reason
    assert "0.1235 ± 0.0057" in shown and "0.1500 ± 0.0200" in shown
    assert "not scored: 5 of 5 folds could not be scored" in shown
    chosen_rows = re.findall(r"<tr class=chosen>(.*?)</tr>", page)
    assert len(chosen_rows) == 1 and "00-hist_gradient_boosting" in chosen_rows[0] and "✔ chosen" in chosen_rows[0]
    # holdout metrics beside the champion's value on the same holdout
    row = re.search(r"<tr><td>test_rmsle ★</td>(.*?)</tr>", page)[1]
    assert cells(row) == ["0.1187", "0.1250"]
    assert "champion (v6) on the same holdout" in shown
    assert "21345.2500" in shown and "0.9312" in shown
    assert "promoted: this version is the champion" in page
    assert "Why: test_rmsle 0.11872 beats champion v6 0.12500 by more than 0" in page
    assert "Gr_Liv_Area" in shown and "0.0654 ± 0.002" in shown
    assert "A_agr (2)" in shown and "deadbeef" in shown
    assert "Reference profile" not in page  # left out when no profile is given
    assert "<script" not in page.lower() and "http" not in page  # self-contained


def test_a_dataclass_and_a_dict_make_the_same_card():
    assert model_card_html(ModelCardFacts.from_dict(facts())) == model_card_html(facts())
    with pytest.raises(ValueError, match="unknown model card fact"):
        model_card_html(facts(surprise=1))


def test_without_a_champion_the_card_says_so():
    promotion = {"promote": True, "reason": "no champion yet", "metric": "test_rmsle", "challenger_value": 0.12}
    page = model_card_html(facts(promotion=promotion))
    assert "There was no champion to compare with" in page
    assert "on the same holdout</th>" not in page  # no champion column
    assert "Why: no champion yet" in page


def test_a_version_that_does_not_beat_the_champion_stays_challenger():
    promotion = {
        "promote": False,
        "reason": "test_rmsle 0.13 does not beat champion v6 0.12500 by more than 0",
        "metric": "test_rmsle",
        "challenger_value": 0.13,
        "champion_version": "6",
        "champion_value": 0.125,
    }
    page = model_card_html(facts(promotion=promotion, aliases=["challenger"]))
    assert "not promoted: the champion stays" in page and "promoted: this version is the champion" not in page


def test_a_version_waiting_for_approval_says_so_and_shows_every_field_of_the_decision():
    reason = "test_rmsle 0.11872 beats champion v6 0.12500 by more than 0; awaits approval (registry.promotion: manual)"
    promotion = {
        **facts()["promotion"],
        "promote": False,
        "awaiting_approval": True,
        "margin": 0.0,
        "reason": reason,
        "requested_by": "pipeline run 42",
    }
    page = model_card_html(facts(promotion=promotion, aliases=["challenger"]))
    assert "awaits approval: registered as challenger until a person promotes it" in page
    assert f"Why: {html.escape(reason)}" in page
    shown = cells(page)
    assert {"awaiting_approval", "True", "requested_by", "pipeline run 42", "margin"} <= set(shown)
    # the same, said only in the reason text
    only_reason = {k: v for k, v in promotion.items() if k != "awaiting_approval"}
    assert "awaits approval: registered" in model_card_html(facts(promotion=only_reason, aliases=["challenger"]))


def test_a_reference_profile_is_summarised_when_given():
    profile = {
        "rows": 2344,
        "numeric": {"Lot_Area": {"null_fraction": 0.0, "min": 1300.0, "max": 215245.0}},
        "categorical": {
            "Mas_Vnr_Type": {"null_fraction": 0.5, "shares": {"None": 0.8, "Stone": 0.2}, "other_levels": []}
        },
        "prediction": {"kind": "value", "label": None, "rows": 586, "min": 11.2, "max": 13.4},
    }
    page = model_card_html(facts(reference_profile=profile))
    assert "<h2>Reference profile</h2>" in page
    assert "against 2,344 training rows and the predicted value for 586 holdout rows" in page
    shown = cells(page)
    assert shown[shown.index("Lot_Area") + 1 :][:3] == ["numeric", "0%", "1300 to 215245"]
    assert shown[shown.index("Mas_Vnr_Type") + 1 :][:3] == ["categorical", "50%", "None 80%, Stone 20%"]


def test_every_value_from_data_or_config_is_escaped():
    hostile = facts(
        model_name=f"m{SCRIPT}",
        version=IMAGE,
        dataset=SCRIPT,
        description=SCRIPT,
        target=IMAGE,
        data_uri=f"data/{SCRIPT}.csv",
        candidates=[{"id": SCRIPT, "estimator": IMAGE, "params": {SCRIPT: IMAGE}, "metric": SCRIPT, "mean": 1.0}],
        chosen=SCRIPT,
        holdout_metrics={SCRIPT: 1.0},
        promotion={"promote": False, "reason": SCRIPT, "champion_version": IMAGE, SCRIPT: IMAGE},
        aliases=[SCRIPT],
        importance=[{"feature": SCRIPT, "mean": 0.1, "std": 0.0}],
        known_limits=[{"column": SCRIPT, "kind": IMAGE, "detail": SCRIPT}],
        reference_profile={
            "rows": SCRIPT,
            "numeric": {SCRIPT: {"null_fraction": 0.5, "min": IMAGE, "max": 1.0}},
            "categorical": {IMAGE: {"null_fraction": 0.0, "shares": {SCRIPT: 1.0}, "other_levels": [IMAGE]}},
            "prediction": {"kind": "probability", "label": SCRIPT, "rows": 3, "min": SCRIPT, "max": 1.0},
        },
        lineage={SCRIPT: IMAGE},
    )
    page = model_card_html(hostile)
    lowered = page.lower()
    assert "<script" not in lowered and "<img" not in lowered
    assert html.escape(SCRIPT) in page and html.escape(IMAGE) in page


# ---- on real data --------------------------------------------------------------------------------


def fitted(raw, config):
    train, test = split_frame(process_frame(raw, config), config)
    featurizer = build_featurizer(config).fit(features_and_target(train, config)[0])
    return fit_model(train, featurizer, expand_search_space(config)[0], config), train, test


def test_known_limits_on_ames(ames_raw, ames_config):
    train, _ = split_frame(process_frame(ames_raw, ames_config), ames_config)
    limits = {(k.column, k.kind): k.detail for k in known_limits(train, ames_config)}
    zoning = limits[("MS_Zoning", "rare categories")]
    assert "A_agr (2)" in zoning and "I_all (1)" in zoning and "Residential_Low_Density" not in zoning
    assert "Neighborhood" in {column for column, kind in limits if kind == "rare categories"}
    assert "North_Ames" not in limits[("Neighborhood", "rare categories")]  # a common neighbourhood
    # A blank veneer means the level None: counted as many nulls, read as that level, never "unseen".
    assert limits[("Mas_Vnr_Type", "many nulls")].startswith("60.8% of training rows blank, read as the level None")
    assert ("Mas_Vnr_Type", "categories never seen in training") not in limits
    assert ("Lot_Area", "many nulls") not in limits
    low, high = train["Sale_Price"].min(), train["Sale_Price"].max()
    assert limits[("Sale_Price", "target range")].startswith(f"trained on {int(low):,} to {int(high):,}")


def test_a_rare_class_on_telco(telco_raw, telco_config):
    train, _ = split_frame(process_frame(telco_raw, telco_config), telco_config)
    assert [k for k in known_limits(train, telco_config) if k.kind == "rare class"] == []  # 27 % churn
    few = train[train["churn"] == "Yes"].head(20)
    thin = known_limits(pd.concat([train[train["churn"] == "No"].head(4000), few]), telco_config)
    rare = [k for k in thin if k.kind == "rare class"]
    assert len(rare) == 1 and rare[0].column == "churn" and rare[0].detail == "Yes: 20 of 4,020 training rows (0.498%)"


def test_feature_importance_is_bounded_repeatable_and_finds_what_matters(telco_raw, telco_config):
    config = quick(telco_config)
    model, _, test = fitted(telco_raw, config)
    X, y = features_and_target(test, config)
    started = time.perf_counter()
    first = feature_importance(model, X, y, "test_roc_auc", top=5, max_rows=400)
    assert time.perf_counter() - started < 30
    assert len(first) == 5 and first == feature_importance(model, X, y, "test_roc_auc", top=5, max_rows=400)
    assert [i.mean for i in first] == sorted((i.mean for i in first), reverse=True)
    assert {"tenure", "contract", "internet_service", "total_charges", "monthly_charges"} & {i.feature for i in first}


def test_a_card_gathered_from_a_real_model(ames_raw, ames_config):
    config = quick(ames_config)
    model, train, test = fitted(ames_raw, config)
    metrics = holdout_metrics(model, test, config)
    candidate = expand_search_space(config)[0]
    registration = {
        "model_name": "ames-house-prices",
        "version": "1",
        "run_id": "r1",
        "aliases": ["challenger", "champion"],
        "promotion": {"promote": True, "reason": "no champion yet", "metric": "test_rmsle", "champion_version": None},
        "metrics": metrics,
    }
    cv = [{"candidate": candidate, "metric": "cv_rmsle", "mean": 0.14, "std": 0.01, "error": None}]
    data = {"source_uri": "data/ames.csv.gz", "sha256": "b2" * 32, "rows": len(ames_raw)}
    card = gather_facts(config, model, train, test, registration, cv, candidate["id"], data)
    assert (card.train_rows, card.holdout_rows, card.data_rows) == (len(train), len(test), 2930)
    assert len(card.importance) == 10 and card.importance_metric == "rmsle"
    page = model_card_html(card)
    shown = cells(page)
    assert f"{metrics['test_rmsle']:.4f}" in shown and "0.1400 ± 0.0100" in shown
    assert "There was no champion to compare with" in page
    assert "MS_Zoning" in shown and "rare categories" in shown


def test_hostile_names_in_real_data_come_out_as_text(telco_raw, telco_config, tmp_path):
    raw = quick(telco_config).model_dump(mode="json")
    raw["name"], raw["description"] = f"telco {SCRIPT}", f"churn {IMAGE}"
    raw["columns"][SCRIPT] = raw["columns"].pop("contract")
    config = parse_config(raw)
    frame = telco_raw.rename(columns={"contract": SCRIPT})
    frame.loc[frame.index[:20], SCRIPT] = IMAGE  # a rare level, named to attack the page
    model, train, test = fitted(frame, config)
    registration = {"model_name": "t", "version": "1", "metrics": holdout_metrics(model, test, config)}
    card = gather_facts(config, model, train, test, registration, [], "", {})
    assert SCRIPT in {i.feature for i in card.importance}  # the contract column matters to churn
    assert any(k.column == SCRIPT and IMAGE in k.detail for k in card.known_limits)
    page = model_card_html(card)
    assert "<script" not in page.lower() and "<img" not in page.lower()
    assert html.escape(SCRIPT) in page and html.escape(IMAGE) in page
    if shutil.which("chromium") is None:
        pytest.skip("chromium is not installed: the escaping is checked statically above")
    path = tmp_path / "card.html"
    path.write_text(page)
    dom = subprocess.run(
        ["chromium", "--headless", "--no-sandbox", "--disable-gpu", "--virtual-time-budget=2000", "--dump-dom"]
        + [path.as_uri()],
        capture_output=True,
        text=True,
        timeout=120,
    ).stdout
    assert "<body" in dom and "data-pwned" not in dom and "<script" not in dom.lower()


def test_the_card_module_needs_neither_mlflow_nor_kfp():
    check = (
        "import sys, lifecycle.modelling.model_card; "
        "sys.exit(sorted({'mlflow', 'kfp'} & {m.split('.')[0] for m in sys.modules}) or 0)"
    )
    done = subprocess.run([sys.executable, "-c", check], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr


def test_importance_that_cannot_be_computed_leaves_the_rest_of_the_card(ames_raw, ames_config):
    from sklearn.base import BaseEstimator, RegressorMixin

    config = quick(ames_config)
    train, test = split_frame(process_frame(ames_raw, config), config)

    class Broken(RegressorMixin, BaseEstimator):
        def fit(self, X, y):
            return self

        def predict(self, X):
            raise RuntimeError(f"cannot predict {SCRIPT}")

    card = gather_facts(config, Broken(), train, test, {"model_name": "m", "version": "2"}, [], "")
    assert card.importance == [] and "cannot predict" in card.importance_error
    page = model_card_html(card)
    assert f"Not computed: RuntimeError: cannot predict {html.escape(SCRIPT)}." in page
    assert "rare categories" in page
