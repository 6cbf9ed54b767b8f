"""`python -m tools.promotion` through a subprocess, against a real MLflow registry (SQLite)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from mlflow import MlflowClient

from tests.registry.test_approval import build_parts, champion, register
from tools.promotion import history_table

ROOT = Path(__file__).resolve().parents[2]
NAME = "ames-approval"


@pytest.fixture(scope="module")
def ames_parts(ames_raw, ames_config):
    return build_parts(ames_raw, ames_config)


def promotion(*args, cwd: Path, uri: str | None) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    env.pop("MLFLOW_TRACKING_URI", None)
    if uri:
        env["MLFLOW_TRACKING_URI"] = uri
    return subprocess.run(
        [sys.executable, "-m", "tools.promotion", *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=300
    )


def refused(result: subprocess.CompletedProcess, message: str) -> None:
    assert result.returncode == 1, result
    assert "Traceback" not in result.stderr, result.stderr
    assert result.stderr.splitlines() == [f"error: {message}"], result.stderr
    assert result.stdout == ""


def test_approve_rollback_and_history_from_the_command_line(mlflow_store, ames_parts, tmp_path):
    register(ames_parts, ames_parts[4])  # v1 champion
    register(ames_parts, ames_parts[3], promotion="manual")  # v2 awaits approval
    client = MlflowClient()

    approved = promotion("approve", "--model", NAME, "--version", "2", "--by", "carol", cwd=tmp_path, uri=mlflow_store)
    assert approved.returncode == 0, approved.stderr
    assert approved.stdout.strip() == f"{NAME} v2 is champion (was v1); recorded as champion_history.000002"
    assert champion(client) == "2"

    refused(
        promotion("approve", "--model", NAME, "--version", "2", cwd=tmp_path, uri=mlflow_store),
        f"{NAME} v2 is already champion; nothing moved",
    )
    refused(
        promotion("approve", "--model", NAME, "--version", "7", cwd=tmp_path, uri=mlflow_store),
        f"{NAME} v7 does not exist in the registry",
    )

    back = promotion("rollback", "--model", NAME, "--by", "dave", cwd=tmp_path, uri=mlflow_store)
    assert back.returncode == 0, back.stderr
    assert back.stdout.strip() == f"{NAME} champion rolled back from v2 to v1; recorded as champion_history.000003"
    refused(
        promotion("rollback", "--model", NAME, cwd=tmp_path, uri=mlflow_store),
        f"{NAME} has no champion before v1 in its history",
    )
    assert champion(client) == "1"

    shown = promotion("history", "--model", NAME, cwd=tmp_path, uri=mlflow_store)
    assert shown.returncode == 0, shown.stderr
    lines = shown.stdout.splitlines()
    assert lines[0] == f"champion history of {NAME}"
    assert lines[1].split() == ["when", "move", "why", "by"]
    rows = lines[2:]
    assert len(rows) == 3
    assert "none → v1" in rows[0] and "promotion: test_rmsle" in rows[0] and "vs no champion" in rows[0]
    assert rows[0].rstrip().endswith("pipeline run local") and " UTC " in rows[0]
    assert "v1 → v2" in rows[1] and "approval (test_rmsle" in rows[1] and rows[1].endswith("carol")
    assert "v2 → v1" in rows[2] and "rollback" in rows[2] and rows[2].endswith("dave")


def test_a_malformed_tag_is_shown_and_a_missing_store_or_model_is_one_line(mlflow_store, tmp_path):
    client = MlflowClient()
    client.create_registered_model(NAME)
    client.create_model_version(NAME, source="/nowhere/model")
    client.set_registered_model_alias(NAME, "champion", "1")
    client.set_registered_model_tag(NAME, "champion_history.000001", "{oops")
    shown = promotion("history", "--model", NAME, cwd=tmp_path, uri=mlflow_store)
    assert shown.returncode == 0, shown.stderr
    assert "unreadable: history tag champion_history.000001: not JSON" in shown.stdout
    refused(
        promotion("rollback", "--model", NAME, cwd=tmp_path, uri=mlflow_store),
        f"cannot tell the earlier champion of {NAME}: history tag champion_history.000001: not JSON "
        "(Expecting property name enclosed in double quotes: line 1 column 2 (char 1))",
    )
    refused(
        promotion("history", "--model", "nothing-here", cwd=tmp_path, uri=mlflow_store),
        "registered model nothing-here does not exist",
    )
    empty = tmp_path / "elsewhere"
    empty.mkdir()
    refused(
        promotion("history", "--model", NAME, cwd=empty, uri=None),
        "no local registry at .local/mlflow.db (run `make run` first) and MLFLOW_TRACKING_URI is not set",
    )
    assert not (empty / ".local").exists()
    refused(
        promotion("approve", "--model", NAME, "--version", "", cwd=tmp_path, uri=mlflow_store),
        "--version is empty (make: VERSION=n)",
    )


def test_the_table_says_why_each_move_happened():
    entries = [
        {"tag": "t1", "at": "2026-01-02T03:04:05+00:00", "from": None, "to": "1", "reason": "promotion", "by": "run a",
         "metric": "test_rmsle", "new": 0.123456, "old": None, "margin": 0.0},
        {"tag": "t2", "at": "2026-01-03T03:04:05+00:00", "from": "1", "to": "2", "reason": "promotion", "by": "run b",
         "metric": "test_rmsle", "new": 0.1, "old": 0.123456, "margin": 0.01},
        {"tag": "t3", "problem": "history tag t3: not JSON"},
    ]  # fmt: skip
    table = history_table("m", entries).splitlines()
    assert table[2].split("  ")[0] == "2026-01-02 03:04:05 UTC"
    assert "promotion: test_rmsle 0.12346 vs no champion, margin 0" in table[2]
    assert "v1 → v2" in table[3] and "promotion: test_rmsle 0.1 vs 0.12346, margin 0.01" in table[3]
    assert table[-1] == "unreadable: history tag t3: not JSON"
    assert history_table("m", []) == "m: no recorded moves of champion"
