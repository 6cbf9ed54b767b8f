"""tools.run_local's command line: a margin is checked before anything runs, and the summary
never shows the tracking URI's credentials."""

from __future__ import annotations

import pytest

from lifecycle.dataset.config import ConfigError
from tools import run_local


@pytest.fixture(autouse=True)
def no_pipeline_runs(monkeypatch):
    """A tripwire: were a check missing, the command would go on to train for minutes."""

    def started(*args):
        raise AssertionError("the local runner was started")

    monkeypatch.setattr(run_local, "init_local_runner", started)


@pytest.mark.parametrize("text", ["-0.1", "--margin=-1e-3", "nan", "inf", "1e999", "lots"])
def test_a_margin_flag_that_would_promote_a_worse_model_is_refused_naming_the_flag(tmp_path, capsys, text):
    workdir = tmp_path / "work"
    flag = [text] if text.startswith("--") else ["--margin", text]
    with pytest.raises(SystemExit) as stopped:
        run_local.main(["--workdir", str(workdir), *flag])
    assert stopped.value.code == 2
    assert "argument --margin: value must be a finite number at least 0" in capsys.readouterr().err
    assert not workdir.exists()  # refused before the store or the runner were set up


def test_a_margin_given_to_run_training_is_checked_before_anything_runs(tmp_path, ames_config):
    with pytest.raises(ConfigError, match=r"margin must be a finite number at least 0 .*not -0\.5"):
        run_local.run_training(ames_config, tmp_path / "work", margin=-0.5)
    assert not (tmp_path / "work").exists()


def test_the_margin_flag_takes_a_sane_value():
    assert run_local.parse_args(["--margin", "0.01"]).margin == 0.01


def test_the_summary_masks_the_tracking_uri(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "postgresql://mlflow:p@ss-sentinel@db.internal:5432/mlflow")
    registration = {
        "model_name": "m",
        "version": "1",
        "aliases": ["champion"],
        "promotion": {"reason": "first version"},
        "metrics": {"test_rmse": 1.0},
        "run_id": "r1",
    }
    run_local.print_summary(registration, 1.0, tmp_path)
    out = capsys.readouterr().out
    assert "tracking   postgresql://***@db.internal:5432/mlflow (run r1)" in out and "sentinel" not in out
