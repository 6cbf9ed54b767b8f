"""tools.run_local's command line: a margin is checked before anything runs, the summary never shows
the tracking URI's credentials, and a run prints a line per task with kfp.local's logs in a file."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import threading
from pathlib import Path

import pytest
import yaml

from lifecycle.dataset.config import ConfigError
from tests.conftest import ROOT, quick
from tools import progress, run_local
from tools.capture import ANSI_CODES, captured


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


# --- What a user sees: one line per task, the summary naming the full log, the step's own error.

TASK_LINE = re.compile(r"^(?P<task>[a-z][\w\[\]-]*) +(?P<status>SUCCESS|FAILURE) +\d+\.\d s$")
TRAINING_TASKS = [
    "ingest-dataset",
    "validate-dataset",
    "process-dataset",
    "split-dataset",
    "fit-featurizer",
    "plan-candidates",
    "cross-validate[0]",
    "train-best-model",
    "evaluate-model",
    "register-model",
    "notify-outcome",
]


def cli(*args: str, verbose: bool = False) -> subprocess.CompletedProcess:
    """`python -m tools.run_local ...` as `make run` starts it, with the store in the work directory."""
    env = {k: v for k, v in os.environ.items() if k not in ("MLFLOW_TRACKING_URI", "VERBOSE")}
    if verbose:
        env["VERBOSE"] = "1"
    return subprocess.run(
        [sys.executable, "-m", "tools.run_local", *args], cwd=ROOT, env=env, capture_output=True, text=True
    )


def task_lines(text: str) -> list[tuple[str, str]]:
    return [(m["task"], m["status"]) for line in text.splitlines() if (m := TASK_LINE.match(line))]


def named_log(text: str) -> Path:
    [path] = [line.split(None, 1)[1] for line in text.splitlines() if line.startswith("log ")]
    return Path(path)


@pytest.fixture(scope="module")
def quick_config(tmp_path_factory, ames_config) -> Path:
    path = tmp_path_factory.mktemp("config") / "ames-quick.yaml"
    path.write_text(yaml.safe_dump(quick(ames_config).model_dump(mode="json")))
    return path


@pytest.fixture(scope="module")
def no_neighborhood(tmp_path_factory, ames_raw) -> Path:
    """Data the validate step refuses: a required column is missing."""
    path = tmp_path_factory.mktemp("data") / "ames.csv"
    ames_raw.drop(columns=["Neighborhood"]).to_csv(path, index=False)
    return path


@pytest.fixture(scope="module")
def trained(tmp_path_factory, quick_config):
    workdir = tmp_path_factory.mktemp("work")
    return cli("--config", str(quick_config), "--workdir", str(workdir)), workdir


@pytest.mark.pipeline
def test_a_run_prints_one_line_per_task_then_the_summary_naming_the_full_log(trained):
    done, workdir = trained
    assert done.returncode == 0, done.stderr
    assert done.stderr == ""
    lines = done.stdout.splitlines()
    progress = lines[: lines.index("")]
    shown = [TASK_LINE.match(line)["task"] for line in progress]
    # kfp.local may run independent tasks in either order (plan-candidates needs only the config).
    assert sorted(shown) == sorted(TRAINING_TASKS)
    chain = [task for task in shown if task != "plan-candidates"]
    assert chain == [task for task in TRAINING_TASKS if task != "plan-candidates"]
    assert shown.index("plan-candidates") < shown.index("cross-validate[0]")
    assert task_lines(done.stdout) == [(task, "SUCCESS") for task in shown]
    assert len({line.index("SUCCESS") for line in progress}) == 1  # aligned columns
    summary = lines[len(progress) + 1 :]
    assert summary[0].startswith("model      ames-house-prices version 1") and summary[-1].startswith("wall time")
    log = named_log(done.stdout)
    assert log.parent == (workdir / "logs").resolve()
    text = log.read_text()
    assert "Got executor_input" in text and "Executing task 'register-model'" in text
    assert "executor_input" not in done.stdout and " - INFO - " not in done.stdout


@pytest.mark.pipeline
def test_scoring_is_as_quiet_and_json_leaves_stdout_to_the_json(trained, quick_config):
    _, workdir = trained
    done = cli("score", "--config", str(quick_config), "--workdir", str(workdir))
    assert done.returncode == 0, done.stderr
    assert task_lines(done.stdout) == [("score-batch", "SUCCESS")]
    assert "scored 2930 rows with models:/ames-house-prices/1 -> " in done.stdout
    assert "Got executor_input" in named_log(done.stdout).read_text()
    assert re.search(r"^drift      stable: 0 of \d+ columns drifted", done.stdout, re.M), done.stdout

    done = cli("score", "--config", str(quick_config), "--workdir", str(workdir), "--json")
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["rows"] == 2930
    assert task_lines(done.stderr) == [("score-batch", "SUCCESS")] and named_log(done.stderr).is_file()


@pytest.mark.pipeline
def test_a_failed_step_is_named_with_its_own_error_and_no_traceback(tmp_path, quick_config, no_neighborhood):
    done = cli("--config", str(quick_config), "--workdir", str(tmp_path), "--data-uri", str(no_neighborhood))
    assert done.returncode == 1
    # The exit handler still reports the failure.
    assert task_lines(done.stdout) == [
        ("ingest-dataset", "SUCCESS"),
        ("validate-dataset", "FAILURE"),
        ("notify-outcome", "SUCCESS"),
    ]
    assert re.search(r"^failed     validate-dataset after \d+\.\d s$", done.stderr, re.M)
    assert (
        f"error      DataValidationError: {no_neighborhood} failed validation with 1 violation(s):\n"
        "             - Neighborhood: required: required column is missing\n"
    ) in done.stderr
    log = named_log(done.stderr)
    assert "lifecycle.dataset.report.DataValidationError" in log.read_text()
    shown = done.stdout + done.stderr
    assert "Traceback" not in shown and 'File "' not in shown and "executor_input" not in shown


@pytest.mark.pipeline
def test_verbose_streams_the_full_logs_and_still_writes_them(tmp_path, quick_config, no_neighborhood):
    done = cli(
        "--config", str(quick_config), "--workdir", str(tmp_path), "--data-uri", str(no_neighborhood), verbose=True
    )
    assert done.returncode == 1
    assert "Got executor_input" in done.stdout and "Traceback (most recent call last):" in done.stdout
    assert task_lines(done.stdout) == []  # kfp.local's own lines say when a task finishes
    streamed = [ANSI_CODES.sub("", line) for line in done.stdout.splitlines()]
    assert streamed == named_log(done.stderr).read_text().splitlines()
    assert "error      DataValidationError: " in done.stderr


# --- The pieces: a step's error out of its output, and output traced to the task that printed it.

STEP_OUTPUT = """\
    [KFP Executor 2026-12-05 15:24:00,941 INFO]: Got executor_input:
    Traceback (most recent call last):
      File "<frozen runpy>", line 198, in _run_module_as_main
      File "/work/house/.venv/lib/python3.11/site-packages/kfp/dsl/executor.py", line 453, in execute
        result = self.func(**func_kwargs)
                 ^^^^^^^^^^^^^^^^^^^^^^^^
      File "/work/house/lifecycle/dataset/report.py", line 113, in raise_if_failed
        raise DataValidationError(
    lifecycle.dataset.report.DataValidationError: data.csv failed validation with 2 violation(s):
      - Neighborhood: required: required column is missing
      - Lot_Area: dtype: expected numbers, found text in 1 row(s): 'big'
    \n\n""".splitlines()


def test_a_steps_error_is_the_exception_it_raised_without_the_frames():
    assert progress.step_error(STEP_OUTPUT) == (
        "DataValidationError: data.csv failed validation with 2 violation(s):\n"
        "  - Neighborhood: required: required column is missing\n"
        "  - Lot_Area: dtype: expected numbers, found text in 1 row(s): 'big'"
    )


def test_of_chained_exceptions_the_last_is_the_error():
    chained = [
        "  Traceback (most recent call last):",
        '    File "a.py", line 1, in f',
        "  KeyError: 'x'",
        "",
        "  The above exception was the direct cause of the following exception:",
        "",
        "  Traceback (most recent call last):",
        '    File "a.py", line 3, in g',
        "      raise",
        "  mlflow.exceptions.MlflowException: model not found",
    ]
    assert progress.step_error(chained) == "MlflowException: model not found"


def test_a_long_error_is_cut_short_and_output_without_a_traceback_gives_its_last_lines():
    lines = ["Traceback (most recent call last):", '  File "a.py", line 1', "ValueError: many", *["- item"] * 30]
    error = progress.step_error(lines).splitlines()
    assert len(error) == progress.ERROR_LINES and error[-1] == "... (20 more lines in the log)"
    assert progress.step_error(["  one", "", "  two", "  three", "  four"]) == "two\nthree\nfour"


def test_parallel_for_iterations_are_told_apart():
    assert progress.task_label("cross-validate", "training-2026/for-loop-2-iteration-3") == "cross-validate[3]"
    assert progress.task_label("train-best-model", "training-2026") == "train-best-model"


def test_everything_printed_reaches_the_log_and_not_the_terminal(tmp_path, capfd):
    log = tmp_path / "run.log"
    seen = []
    with captured(log, seen.append):
        print("python level")
        print("to stderr", file=sys.stderr)
        os.write(1, b"descriptor level\n")
        subprocess.run([sys.executable, "-c", "print('child process')"], check=True)
    assert capfd.readouterr() == ("", "")
    assert log.read_text().splitlines() == ["python level", "to stderr", "descriptor level", "child process"]
    assert seen == ["python level", "to stderr"]  # the lines kfp.local prints go through Python
    print("after")
    assert capfd.readouterr().out == "after\n"


def test_each_line_is_traced_to_the_task_whose_thread_printed_it(tmp_path, monkeypatch):
    """kfp.local runs ParallelFor iterations in concurrent threads and prints their output piecewise;
    the failed task's error must be its own, whatever the other printed meanwhile."""
    from kfp.local import status
    from kfp.local.orchestrator import task_executor

    both_printing = threading.Barrier(2)

    def execute_single_task(task_name, pipeline_resource_name, **other):
        failing = pipeline_resource_name.endswith("-1")
        lines = STEP_OUTPUT if failing else ["    fitting", *["    ok"] * len(STEP_OUTPUT)]
        both_printing.wait()
        for line in lines:
            print("    ", end="")  # kfp.local's indent: a write of its own
            print(line[4:])
        return {}, status.Status.FAILURE if failing else status.Status.SUCCESS

    monkeypatch.setattr(task_executor, "execute_single_task", execute_single_task)
    reported = []
    tracker = progress.Tracker(reported.append)
    with captured(tmp_path / "run.log", tracker.on_line), tracker.watching():
        threads = [
            threading.Thread(
                target=task_executor.execute_single_task,
                kwargs={"task_name": "cross-validate", "pipeline_resource_name": f"training/for-loop-2-iteration-{i}"},
            )
            for i in range(2)
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    assert task_executor.execute_single_task is execute_single_task  # unwrapped again
    assert sorted((task.name, task.status) for task in reported) == [
        ("cross-validate[0]", "SUCCESS"),
        ("cross-validate[1]", "FAILURE"),
    ]
    [failed] = tracker.failed()
    assert failed.error().startswith("DataValidationError: data.csv failed validation with 2 violation(s):\n")
    assert "ok" not in failed.error()
    assert (tmp_path / "run.log").read_text().count("    ok\n") == len(STEP_OUTPUT)  # no line cut by another
