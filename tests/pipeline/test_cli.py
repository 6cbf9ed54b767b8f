"""The main job's command line: its summary, and a bad config stopped before any step runs."""

import pytest

from pipelines.run_local import main

pytestmark = pytest.mark.pipeline


def test_bad_config_file_exits_2_naming_the_field(tmp_path, capsys, workdir):
    config = tmp_path / "bad.yaml"
    config.write_text("name: x\ntask: regression\n")
    assert main(["--config", str(config), "--workdir", str(workdir)]) == 2
    err = capsys.readouterr().err
    assert "is not a valid data-set config" in err and "data_uri: Field required" in err and "training: Field required" in err
