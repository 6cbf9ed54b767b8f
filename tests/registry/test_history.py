"""The champion's history in the registry: entries in order, malformed tags reported, and a
registration whose history entry cannot be written moving nothing."""

from __future__ import annotations

import json
import logging

import pytest
from mlflow import MlflowClient

from lifecycle.registry.approval import earlier_champion, rollback
from lifecycle.registry.errors import RegistrationError
from lifecycle.registry.history import ChampionHistory, HistoryError, champion_line, history
from tests.registry.test_approval import build_parts, champion, register

NAME = "ames-approval"


@pytest.fixture(scope="module")
def ames_parts(ames_raw, ames_config):
    return build_parts(ames_raw, ames_config)


def entry(source, to, reason="promotion"):
    return {"tag": f"t{to}", "at": "2026-01-01T00:00:00+00:00", "from": source, "to": to, "reason": reason}


def write(client, tag, value):
    client.set_registered_model_tag(NAME, tag, value if isinstance(value, str) else json.dumps(value))


def test_history_lists_every_move_in_order_with_its_reason(mlflow_store):
    client = MlflowClient()
    client.create_registered_model(NAME)
    recorded = ChampionHistory(client, NAME)
    recorded.record(None, "1", "promotion", "pipeline run a", metric="test_rmsle", new=0.2, margin=0.0)
    recorded.record("1", "2", "promotion", "pipeline run b", metric="test_rmsle", new=0.1, old=0.2, margin=0.0)
    for number in range(3, 12):  # beyond 9 and 10: the order is numeric
        recorded.record(str(number - 1), str(number), "approval" if number % 2 else "promotion", "alice")
    recorded.record("11", "10", "rollback", "bob")
    entries = history(client, NAME)
    assert [e["tag"] for e in entries] == [f"champion_history.{n:06d}" for n in range(1, 13)]
    assert [(e["from"], e["to"]) for e in entries][-3:] == [("9", "10"), ("10", "11"), ("11", "10")]
    assert entries[1]["old"] == 0.2 and entries[1]["new"] == 0.1 and entries[0]["old"] is None
    assert entries[-1]["reason"] == "rollback" and entries[-1]["by"] == "bob"


@pytest.mark.parametrize(
    "value, problem",
    [
        ("not json", "not JSON"),
        ([1, 2], "a JSON list, not an object"),
        ({**entry("1", "2"), "reason": "because"}, "reason 'because' is not one of promotion, approval, rollback"),
        ({**entry("1", "2"), "to": "../3"}, "'to' is '../3', not a version number"),
        ({**entry("1", "2"), "from": 1}, "'from' is 1, not a version number"),
        ({**entry("1", "2"), "at": "yesterday"}, "'at' is 'yesterday', not an ISO time"),
        ({**entry("1", "2"), "new": "NaN"}, "'new' is 'NaN', not a finite number"),
        ({**entry("2", "2")}, "a move from v2 to itself"),
    ],
)
def test_a_malformed_history_tag_is_reported_by_name_not_crashed_on(mlflow_store, value, problem, caplog):
    client = MlflowClient()
    client.create_registered_model(NAME)
    ChampionHistory(client, NAME).record(None, "1", "promotion", "run a")
    write(
        client,
        "champion_history.000002",
        {k: v for k, v in value.items() if k != "tag"} if isinstance(value, dict) else value,
    )
    ChampionHistory(client, NAME).record("1", "2", "approval", "alice")
    entries = history(client, NAME)
    assert [e["tag"] for e in entries] == [f"champion_history.00000{n}" for n in (1, 2, 3)]
    assert entries[1] == {"tag": "champion_history.000002", "problem": entries[1]["problem"]}
    assert entries[1]["problem"].startswith("history tag champion_history.000002: ")
    assert problem in entries[1]["problem"]
    assert entries[2]["to"] == "2"  # the entries after it are still read
    assert "champion_history.000002" in caplog.text
    with pytest.raises(
        HistoryError, match="cannot tell the earlier champion of .*: history tag champion_history.000002"
    ):
        earlier_champion(NAME, entries, "2")


def test_a_tag_under_the_prefix_without_a_number_is_reported(mlflow_store):
    client = MlflowClient()
    client.create_registered_model(NAME)
    write(client, "champion_history.latest", entry(None, "1"))
    assert history(client, NAME) == [
        {
            "tag": "champion_history.latest",
            "problem": "history tag champion_history.latest: its name does not end in a number",
        }
    ]


def test_history_of_a_model_that_does_not_exist_says_so(mlflow_store):
    with pytest.raises(HistoryError, match="registered model nothing-here does not exist"):
        history(MlflowClient(), "nothing-here")


def test_a_rollback_steps_back_and_a_gap_restarts_the_line():
    assert champion_line([]) == []
    assert champion_line([entry(None, "1"), entry("1", "2"), entry("2", "3")]) == ["1", "2", "3"]
    walked = [entry(None, "1"), entry("1", "2"), entry("2", "3"), entry("3", "2", "rollback")]
    assert champion_line(walked) == ["1", "2"]
    assert champion_line([*walked, entry("2", "1", "rollback")]) == ["1"]
    assert champion_line([*walked, entry("2", "4", "approval")]) == ["1", "2", "4"]
    # v5 was made champion by hand, unrecorded: what came before it is not known to lead to it.
    assert champion_line([entry(None, "1"), entry("1", "2"), entry("5", "6", "approval")]) == ["5", "6"]
    # A first recorded move off a champion from before the history began.
    assert champion_line([entry("1", "2")]) == ["1", "2"]
    assert earlier_champion(NAME, [entry("1", "2")], "2") == "1"
    with pytest.raises(HistoryError, match="has no champion; there is nothing to roll back"):
        earlier_champion(NAME, [entry("1", "2")], None)
    with pytest.raises(HistoryError, match="has no recorded champion moves"):
        earlier_champion(NAME, [], "2")


@pytest.mark.parametrize("landed", [False, True])
def test_a_registration_whose_history_entry_fails_moves_nothing(mlflow_store, ames_parts, monkeypatch, landed, caplog):
    register(ames_parts, ames_parts[4])
    client = MlflowClient()
    before = history(client, NAME)
    original = MlflowClient.set_registered_model_tag

    def failing(self, name, key, value):
        if key.startswith("champion_history.") and name == NAME:
            if landed:  # the write was applied; its answer was lost
                original(self, name, key, value)
            raise RuntimeError("503 from the registry")
        return original(self, name, key, value)

    monkeypatch.setattr(MlflowClient, "set_registered_model_tag", failing)
    with pytest.raises(RegistrationError, match=f"registering {NAME} v2 failed and was rolled back: 503"):
        register(ames_parts, ames_parts[3])
    monkeypatch.undo()
    assert champion(client) == "1" and history(client, NAME) == before
    assert [str(v.version) for v in client.search_model_versions(f"name='{NAME}'")] == ["1"]
    assert client.get_registered_model(NAME).aliases == {"champion": 1, "challenger": 1}


def test_rollback_refuses_with_no_history(mlflow_store, ames_parts, caplog):
    register(ames_parts, ames_parts[4])
    client = MlflowClient()
    for tag in [e["tag"] for e in history(client, NAME)]:
        client.delete_registered_model_tag(NAME, tag)
    with caplog.at_level(logging.WARNING), pytest.raises(HistoryError, match="has no recorded champion moves"):
        rollback(client, NAME)
    assert champion(client) == "1"
