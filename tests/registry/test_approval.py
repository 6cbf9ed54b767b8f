"""Manual promotion, approval and rollback against a real MLflow registry (SQLite)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from mlflow import MlflowClient
from sklearn.pipeline import Pipeline

from lifecycle.dataset.process import process_frame, split_frame
from lifecycle.modelling.estimators import build_estimator, expand_search_space
from lifecycle.modelling.evaluation import holdout_metrics
from lifecycle.modelling.features import build_featurizer, features_and_target
from lifecycle.notify.message import build_message
from lifecycle.notify.outcome import RunOutcome, registered_by_run
from lifecycle.registry.approval import PromotionError, approve, rollback
from lifecycle.registry.history import HistoryError, history
from lifecycle.registry.registration import register_model
from tests.conftest import quick

NAME = "ames-approval"


@pytest.fixture(scope="module")
def ames_parts(ames_raw, ames_config):
    return build_parts(ames_raw, ames_config)


def build_parts(ames_raw, ames_config):
    """The Ames config with a tiny search space, its split, and a good (alpha 10) and a bad (alpha 1e5) ridge."""
    config = quick(
        ames_config, cv_folds=3, search_space=[{"estimator": "ridge", "params": {"alpha": [10.0, 100000.0]}}]
    )
    train, test = split_frame(process_frame(ames_raw, config), config)
    featurizer = build_featurizer(config).fit(features_and_target(train, config)[0])
    good, bad = (
        Pipeline([("features", featurizer), ("model", build_estimator(c, config))]).fit(
            *features_and_target(train, config)
        )
        for c in expand_search_space(config)
    )
    return config, train, test, good, bad


def register(parts, model, name=NAME, promotion="auto", margin=0.0, run_tag="local"):
    config, train, test, _, _ = parts
    config = config.model_copy(update={"registry": config.registry.model_copy(update={"promotion": promotion})})
    return register_model(
        model,
        train,
        test,
        config,
        holdout_metrics(model, test, config),
        name,
        margin,
        lineage={"git_commit": "abc123", "pipeline_run_id": run_tag},
        artifacts={},
        params={"candidate": "x"},
    )


def champion(client, name=NAME):
    aliases = client.get_registered_model(name).aliases
    return str(aliases["champion"]) if "champion" in aliases else None


def moves(client, name=NAME):
    return [(e["from"], e["to"], e["reason"], e["by"]) for e in history(client, name)]


def model_file(client, version, name=NAME) -> Path:
    return Path(client.get_model_version_download_uri(name, version).removeprefix("file://")) / "model.skops"


def tamper(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[-100] ^= 0x01
    path.write_bytes(bytes(data))


@pytest.fixture
def pending(mlflow_store, ames_parts):
    """v1 (bad) champion by automatic promotion, v2 (good) awaiting approval in manual mode."""
    register(ames_parts, ames_parts[4])
    registration = register(ames_parts, ames_parts[3], promotion="manual", run_tag="run-manual")
    return MlflowClient(), registration


def test_manual_mode_leaves_champion_until_a_person_approves(pending):
    client, registration = pending
    assert registration.version == "2" and registration.aliases == ["challenger"]
    assert registration.promotion["awaiting_approval"] is True and registration.promotion["promote"] is False
    assert "beats champion v1" in registration.promotion["reason"]
    assert "awaits approval (registry.promotion: manual)" in registration.promotion["reason"]
    assert champion(client) == "1"
    assert client.get_model_version(NAME, "2").tags["approval"] == "pending"
    assert moves(client) == [(None, "1", "promotion", "pipeline run local")]

    entry = approve(client, NAME, "2", who="alice")
    assert champion(client) == "2"
    assert client.get_model_version(NAME, "2").tags["approval"] == "approved"
    assert entry["tag"] == "champion_history.000002" and entry["by"] == "alice"
    assert moves(client) == [(None, "1", "promotion", "pipeline run local"), ("1", "2", "approval", "alice")]
    assert "beats champion v1" in history(client, NAME)[1]["note"]


def test_auto_mode_moves_champion_at_once_and_records_both_metrics(mlflow_store, ames_parts):
    register(ames_parts, ames_parts[4])
    better = register(ames_parts, ames_parts[3], margin=0.01)
    assert better.aliases == ["challenger", "champion"] and better.promotion["awaiting_approval"] is False
    client = MlflowClient()
    assert "approval" not in client.get_model_version(NAME, "2").tags
    entries = history(client, NAME)
    assert [(e["from"], e["to"], e["reason"]) for e in entries] == [(None, "1", "promotion"), ("1", "2", "promotion")]
    last = entries[-1]
    assert last["metric"] == "test_rmsle" and last["margin"] == 0.01
    assert last["new"] == pytest.approx(better.metrics["test_rmsle"])
    assert last["old"] == pytest.approx(better.promotion["champion_value"]) and last["old"] > last["new"]


def test_the_notification_says_the_version_awaits_approval_and_how_to_approve_it(pending):
    client, _ = pending
    found = registered_by_run(NAME, "run-manual", client)
    assert found["awaiting_approval"] is True
    outcome = RunOutcome("SUCCEEDED", "training", "training-1", "run-manual", NAME, registration=found)
    text = build_message(outcome)["text"]
    assert "Version 2 awaits approval: champion did not move." in text
    assert f"`make approve MODEL={NAME} VERSION=2`" in text
    approve(client, NAME, "2")
    approved = registered_by_run(NAME, "run-manual", client)
    assert approved["awaiting_approval"] is False
    text = build_message(RunOutcome("SUCCEEDED", "training", "training-1", "run-manual", NAME, registration=approved))
    assert "Version 2 awaits approval" not in text["text"] and "make approve" not in text["text"]


def assert_unchanged(client, before_champion, before_history):
    assert champion(client) == before_champion
    assert history(client, NAME) == before_history


def test_approving_a_bogus_or_unfinished_version_is_refused_and_moves_nothing(pending):
    client, _ = pending
    before = history(client, NAME)
    unfinished = client.create_model_version(NAME, source="/nowhere/model").version  # v3: no digest
    with_digest = client.create_model_version(NAME, source="/nowhere/model", tags={"model_sha256": "a" * 64}).version
    refusals = {
        "9": f"{NAME} v9 does not exist in the registry",
        "two": f"'two' is not a version number of {NAME}",
        "1": f"{NAME} v1 is already champion; nothing moved",
        str(unfinished): f"{NAME} v{unfinished} is not a finished registration: it has no model_sha256 tag",
        str(with_digest): f"{NAME} v{with_digest} is not a finished registration: no promotion decision",
    }
    for version, message in refusals.items():
        with pytest.raises(PromotionError, match=f"^{message}"):
            approve(client, NAME, version, who="mallory")
        assert_unchanged(client, "1", before)
    assert client.get_model_version(NAME, "2").tags["approval"] == "pending"
    assert not client.search_registered_models(f"name LIKE '{NAME}.promotion-lock%'")


def test_approving_a_version_whose_model_file_changed_is_refused(pending):
    client, _ = pending
    before = history(client, NAME)
    tamper(model_file(client, "2"))
    with pytest.raises(PromotionError, match=rf"^{NAME} v2 does not verify: .*does not match the registered sha256"):
        approve(client, NAME, "2")
    assert_unchanged(client, "1", before)


def test_a_version_whose_registration_run_failed_is_refused(pending):
    client, _ = pending
    client.set_terminated(client.get_model_version(NAME, "2").run_id, "FAILED")
    with pytest.raises(PromotionError, match=rf"^{NAME} v2 is not a finished registration: .* ended FAILED"):
        approve(client, NAME, "2")
    assert champion(client) == "1"


def test_rollback_restores_the_previous_champion_and_refuses_when_there_is_none(pending):
    client, _ = pending
    approve(client, NAME, "2", who="alice")
    entry = rollback(client, NAME, who="bob")
    assert champion(client) == "1"
    assert (entry["from"], entry["to"], entry["reason"], entry["by"]) == ("2", "1", "rollback", "bob")
    assert moves(client)[-1] == ("2", "1", "rollback", "bob")
    before = history(client, NAME)
    with pytest.raises(HistoryError, match=f"^{NAME} has no champion before v1 in its history"):
        rollback(client, NAME)
    assert_unchanged(client, "1", before)
    # Approving again steps forward; rolling back returns to v1 once more.
    approve(client, NAME, "2")
    rollback(client, NAME)
    assert champion(client) == "1" and [m[2] for m in moves(client)] == [
        "promotion",
        "approval",
        "rollback",
        "approval",
        "rollback",
    ]


def test_rolling_back_twice_goes_back_two_champions(mlflow_store, ames_parts):
    register(ames_parts, ames_parts[4])  # v1
    register(ames_parts, ames_parts[3], margin=0.01)  # v2 beats v1
    client = MlflowClient()
    register(ames_parts, ames_parts[3], promotion="manual")  # v3: equal to v2, challenger only
    approve(client, NAME, "3")
    assert [rollback(client, NAME)["to"], rollback(client, NAME)["to"]] == ["2", "1"]
    assert champion(client) == "1"


def test_rollback_refuses_an_earlier_champion_that_no_longer_verifies_or_exists(pending):
    client, _ = pending
    approve(client, NAME, "2")
    before = history(client, NAME)
    tamper(model_file(client, "1"))
    with pytest.raises(PromotionError, match=rf"^{NAME} v1 does not verify"):
        rollback(client, NAME)
    assert_unchanged(client, "2", before)
    client.delete_model_version(NAME, "1")
    with pytest.raises(PromotionError, match=rf"^{NAME} v1 does not exist in the registry"):
        rollback(client, NAME)
    assert_unchanged(client, "2", before)


def test_rollback_refuses_when_champion_moved_outside_the_history(pending):
    client, _ = pending
    client.set_registered_model_alias(NAME, "champion", "2")  # by hand, unrecorded
    with pytest.raises(
        HistoryError, match=r"champion of .* is v2 but its history ends at v1 \(champion_history.000001\)"
    ):
        rollback(client, NAME)
    assert champion(client) == "2"


def test_a_history_write_that_fails_puts_the_approval_back(pending, monkeypatch):
    client, _ = pending
    before = history(client, NAME)
    original = MlflowClient.set_registered_model_tag

    def applied_then_failed(self, name, key, value):
        original(self, name, key, value)  # the write lands; the answer is lost
        raise RuntimeError("503 from the registry")

    monkeypatch.setattr(MlflowClient, "set_registered_model_tag", applied_then_failed)
    with pytest.raises(PromotionError, match=rf"^approving {NAME} v2 failed and was put back: 503 from the registry"):
        approve(client, NAME, "2")
    monkeypatch.undo()
    assert_unchanged(client, "1", before)
    assert client.get_model_version(NAME, "2").tags["approval"] == "pending"
    assert not client.search_registered_models(f"name LIKE '{NAME}.promotion-lock%'")


def test_a_failed_approval_tag_puts_champion_and_history_back(pending, monkeypatch):
    client, _ = pending
    before = history(client, NAME)
    original = MlflowClient.set_model_version_tag

    def refused(self, name, version, key, value):
        if (key, value) == ("approval", "approved"):
            raise RuntimeError("403 from the registry")
        return original(self, name, version, key, value)

    monkeypatch.setattr(MlflowClient, "set_model_version_tag", refused)
    with pytest.raises(PromotionError, match="failed and was put back: 403 from the registry"):
        approve(client, NAME, "2")
    monkeypatch.undo()
    assert_unchanged(client, "1", before)
    assert client.get_model_version(NAME, "2").tags["approval"] == "pending"


def test_history_entries_are_small_json_on_registered_model_tags(pending):
    client, _ = pending
    approve(client, NAME, "2", who="alice")
    tags = {k: v for k, v in client.get_registered_model(NAME).tags.items() if k.startswith("champion_history.")}
    assert sorted(tags) == ["champion_history.000001", "champion_history.000002"]
    entry = json.loads(tags["champion_history.000002"])
    assert {"at", "from", "to", "reason", "by"} <= set(entry) and entry["at"].endswith("+00:00")
