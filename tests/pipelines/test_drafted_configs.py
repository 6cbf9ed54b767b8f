"""Configs drafted from the bundled files train through the real pipeline about as well as the
hand-written ones: within TOLERANCE of their holdout metric, with no derived features or clipping."""

import pytest

from lifecycle.dataset.config import METRIC_DIRECTIONS
from lifecycle.dataset.draft import draft_config, write_draft
from tests.conftest import AMES_DATA, TELCO_DATA
from tools.run_local import run_training

pytestmark = pytest.mark.pipeline
TOLERANCE = 0.005


def shortfall(drafted: float, hand: float, metric: str) -> float:
    """How much worse the drafted config scored than the hand-written one (negative: better)."""
    return drafted - hand if METRIC_DIRECTIONS[metric] == "min" else hand - drafted


def assert_within_tolerance(drafted: dict, hand_run: dict, metric: str) -> None:
    assert drafted["aliases"] == ["challenger", "champion"]  # the first version in this test's own store
    assert set(drafted["metrics"]) == set(hand_run["metrics"])
    mine, theirs = drafted["metrics"][metric], hand_run["metrics"][metric]
    gap = shortfall(mine, theirs, metric)
    print(f"{metric}: drafted {mine:.5f}, hand-written {theirs:.5f}")
    assert gap <= TOLERANCE, f"{metric}: drafted {mine:.5f} is {gap:.5f} worse than hand-written {theirs:.5f}"


def train_drafted(data, target: str, tmp_path) -> dict:
    config = write_draft(draft_config(str(data), target), tmp_path / "drafted.yaml")
    return run_training(config, tmp_path)


# The hand-written runs are session fixtures, set up before mlflow_store gives this test its own store.
def test_drafted_ames_config_trains_within_tolerance(ames_run, ames_config, mlflow_store, tmp_path):
    drafted = train_drafted(AMES_DATA, "Sale_Price", tmp_path)
    assert_within_tolerance(drafted, ames_run, ames_config.registry.metric)


def test_drafted_telco_config_trains_within_tolerance(telco_run, telco_config, mlflow_store, tmp_path):
    drafted = train_drafted(TELCO_DATA, telco_config.target.name, tmp_path)
    assert_within_tolerance(drafted, telco_run, telco_config.registry.metric)
