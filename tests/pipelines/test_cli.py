"""The main job's command line: its summary, and a bad config stopped before any step runs."""

from pathlib import Path

import pytest
import yaml

from tests.conftest import TELCO_DATA, quick
from tools.run_local import main

pytestmark = pytest.mark.pipeline


def test_bad_config_file_exits_2_naming_the_field(tmp_path, capsys, workdir):
    config = tmp_path / "bad.yaml"
    config.write_text("name: x\ntask: regression\n")
    assert main(["--config", str(config), "--workdir", str(workdir)]) == 2
    err = capsys.readouterr().err
    assert (
        "is not a valid data-set config" in err
        and "data_uri: Field required" in err
        and "training: Field required" in err
    )


def test_main_job_ends_with_a_summary_of_the_registered_model(tmp_path, capsys, workdir, telco_config):
    config = tmp_path / "telco-quick.yaml"
    config.write_text(yaml.safe_dump(quick(telco_config).model_dump(mode="json")))
    args = [
        "--config",
        str(config),
        "--workdir",
        str(workdir),
        "--model-name",
        "telco-cli",
        "--data-uri",
        str(TELCO_DATA),
    ]
    assert main(args) == 0
    summary = capsys.readouterr().out.split("\n\nmodel ")[-1].splitlines()
    assert summary[0].split() == ["telco-cli", "version", "1"]
    lines = {line.split()[0]: line for line in summary[1:] if line and not line.startswith(" ")}
    assert lines["aliases"].split(None, 1)[1] == "challenger, champion"
    assert {"test_roc_auc", "test_accuracy", "test_f1", "test_log_loss", "reports", "tracking"} <= lines.keys()
    evaluation = Path(lines["reports"].split()[1])
    assert evaluation.name == "report" and "<html" in evaluation.read_text().lower()
