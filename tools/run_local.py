"""Runs the training pipeline on this machine with kfp.local: no cluster, MLflow on SQLite.

    python -m tools.run_local [train] [--config configs/ames.yaml] [--workdir .local]
    python -m tools.run_local score [--config configs/ames.yaml] [--input-uri FILE]

MLFLOW_TRACKING_URI is honoured; without it the registry is a SQLite file in the work directory.
It prints one line per task as it finishes; kfp.local's full logs go to WORKDIR/logs/ (VERBOSE=1
streams them as well).
"""

from __future__ import annotations

import argparse
import builtins
import contextlib
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import TextIO

from tools.capture import ANSI_CODES, open_log
from tools.progress import FollowedRun, follow

DEFAULT_CONFIG = "configs/ames.yaml"
DEFAULT_WORKDIR = ".local"


def git_commit() -> str:
    try:
        return subprocess.run(
            ["git", "rev-parse", "HEAD"], capture_output=True, text=True, check=True, timeout=10
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return ""


def prepare_tracking(workdir: Path) -> str | None:
    """Uses MLFLOW_TRACKING_URI if set; otherwise a SQLite store in the work directory.

    Returns the artifact root to give new experiments: with the default store, artifacts live
    beside it instead of in ./mlruns of whatever directory a step runs in.
    """
    if os.environ.get("MLFLOW_TRACKING_URI"):
        return None
    workdir.mkdir(parents=True, exist_ok=True)
    os.environ["MLFLOW_TRACKING_URI"] = f"sqlite:///{(workdir / 'mlflow.db').resolve()}"
    return str((workdir / "mlartifacts").resolve())


def ensure_experiment(model_name: str, artifact_root: str) -> None:
    from mlflow import MlflowClient

    client = MlflowClient()
    if client.get_experiment_by_name(model_name) is None:
        client.create_experiment(model_name, artifact_location=f"{artifact_root}/{model_name}")


def one_openmp_thread_per_task() -> None:
    """For pipelines that train: kfp.local runs ParallelFor iterations as concurrent processes on
    this one machine, and OpenMP (HistGradientBoosting) spinning in every one of them oversubscribes
    the cores and runs many times slower than one thread each."""
    os.environ.setdefault("OMP_NUM_THREADS", "1")


def init_local_runner(workdir: Path) -> None:
    from kfp import local

    local.init(
        runner=local.SubprocessRunner(use_venv=False),
        pipeline_root=str((workdir / "pipeline_root").resolve()),
        raise_on_error=True,
    )


@contextlib.contextmanager
def print_restored():
    """kfp.local indents `print` while a task runs; with concurrent ParallelFor tasks it can restore
    another task's indenting version instead of the real one."""
    original = builtins.print
    try:
        yield
    finally:
        builtins.print = original


def margin_value(text: str) -> float:
    """argparse `type` for a promotion margin; argparse names the flag before the refusal."""
    from lifecycle.dataset.config import ConfigError, check_margin

    try:
        return check_margin(text, "value")
    except ConfigError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def latest_run_dir(workdir: Path, pipeline: str) -> Path | None:
    runs = sorted((workdir / "pipeline_root").glob(f"{pipeline}-*"))
    return runs[-1].resolve() if runs else None


def run_training(
    config, workdir: Path, data_uri: str | None = None, model_name: str | None = None, margin: float | None = None
) -> dict:
    """Runs `training` through kfp.local and returns the register step's summary, with the path
    of the version's model card under `model_card`.

    `config` is a DatasetConfig or the path of its YAML file.
    """
    from lifecycle.dataset.config import (
        DatasetConfig,
        check_margin,
        config_as_json,
        load_config,
    )
    from pipelines.training import training

    if not isinstance(config, DatasetConfig):
        config = load_config(config)
    margin = config.registry.margin if margin is None else check_margin(margin, "margin")
    one_openmp_thread_per_task()
    artifact_root = prepare_tracking(workdir)
    name = model_name or config.registry.model_name
    if artifact_root:
        ensure_experiment(name, artifact_root)
    init_local_runner(workdir)
    data_uri = data_uri or config.data_uri
    if "://" not in data_uri:
        data_uri = str(Path(data_uri).resolve())  # tasks may run in another directory
    earlier = set((workdir / "pipeline_root").glob("training-*"))
    with print_restored():
        training(
            config=config_as_json(config),
            data_uri=data_uri,
            model_name=name,
            promotion_margin=margin,
            git_commit=git_commit(),
        )
    # The steps run inside an exit handler, from which KFP returns no pipeline outputs. Another run
    # may have started in the same root meanwhile: ours is the earliest of the new ones.
    run_dir = sorted(set((workdir / "pipeline_root").glob("training-*")) - earlier)[0]
    registration = task_output(run_dir, "register-model")
    card = run_dir / "register-model" / "model_card"
    if card.is_file():
        registration["model_card"] = str(card)  # the version's model card (HTML), as the KFP UI shows it
    return registration


def task_output(run_dir: Path, task: str, name: str = "Output"):
    """An output parameter of a finished task, as kfp.local wrote it in the run's pipeline root."""
    return json.loads((run_dir / task / "executor_output.json").read_text())["parameterValues"][name]


def run_scoring(
    config,
    input_uri: str,
    workdir: Path,
    model_name: str | None = None,
    alias: str = "champion",
    chunk_rows: int = 50000,
    output_uri: str = "",
) -> dict:
    """Runs `batch-scoring` through kfp.local; returns rows scored, where the predictions are, and
    the drift verdict with its report.

    `config` is a DatasetConfig or the path of its YAML file (its `monitoring` thresholds apply).
    """
    from lifecycle.dataset.config import DatasetConfig, config_as_json, load_config
    from pipelines.batch_scoring import batch_scoring

    if not isinstance(config, DatasetConfig):
        config = load_config(config)
    prepare_tracking(workdir)
    init_local_runner(workdir)
    earlier = set((workdir / "pipeline_root").glob("batch-scoring-*"))
    with print_restored():
        run = batch_scoring(
            input_uri=input_uri,
            model_name=model_name or config.registry.model_name,
            config=config_as_json(config),
            model_alias=alias,
            chunk_rows=chunk_rows,
            output_uri=output_uri,
        )
    predictions = run.output
    run_dir = sorted(set((workdir / "pipeline_root").glob("batch-scoring-*")) - earlier)[0]
    return {
        "rows": int(predictions.metadata["rows"]),
        "chunks": int(predictions.metadata["chunks"]),
        "predictions": predictions.path,
        "copied_to": output_uri,
        **drift_outcome(run_dir),
    }


def drift_outcome(run_dir: Path) -> dict:
    """The score step's drift verdict and report, from its executor output."""
    scored = json.loads((run_dir / "score-batch" / "executor_output.json").read_text())
    report = scored["artifacts"]["drift_report"]["artifacts"][0]["metadata"]
    return {
        "verdict": scored["parameterValues"]["Output"],
        "summary": report["summary"],
        "drifted_columns": report["drifted_columns"],
        "scored_with": report["model_uri"],
        "report": str(run_dir / "score-batch" / "drift_report"),
        "report_in_mlflow": report["mlflow_artifact"],
    }


def shown(path) -> str:
    """A path as the user would type it: relative to the working directory when it is inside it."""
    path = Path(path)
    return str(path.relative_to(Path.cwd())) if path.is_relative_to(Path.cwd()) else str(path)


def shown_uri(uri: str) -> str:
    """A SQLite store under the working directory as the relative URI that opens it from there."""
    prefix = "sqlite:///"
    return prefix + shown(uri.removeprefix(prefix)) if uri.startswith(prefix + "/") else uri


def print_summary(registration: dict, seconds: float, workdir: Path, log: Path | None = None) -> None:
    from lifecycle.urls import mask_credentials

    promotion = registration["promotion"]
    print()
    print(f"model      {registration['model_name']} version {registration['version']}")
    print(f"aliases    {', '.join(registration['aliases'])}")
    print(f"promotion  {promotion['reason']}")
    for name, value in sorted(registration["metrics"].items()):
        print(f"{name:<14} {value:.4f}")
    tracking = shown_uri(mask_credentials(os.environ["MLFLOW_TRACKING_URI"]))
    print(f"tracking   {tracking} (run {registration['run_id']})")
    run_dir = latest_run_dir(workdir, "training")
    if run_dir:
        print(f"reports    {shown(run_dir / 'evaluate-model' / 'report')} (HTML)")
        print(f"           {shown(run_dir / 'validate-dataset' / 'report')} (Markdown)")
        if registration.get("model_card"):
            print(f"           {shown(registration['model_card'])} (model card, HTML)")
    print(f"           also in MLflow: runs:/{registration['run_id']}/reports/")
    if log:
        print(f"log        {shown(log)}")
    print(f"wall time  {seconds:.1f} s")


def print_failure(run: FollowedRun, exc: Exception, out: TextIO) -> None:
    """The task that failed and the error its step raised, instead of kfp.local's log wall."""
    failed = run.tracker.failed()
    print(file=out)
    if failed:
        task = failed[0]  # the exit handler's notification may run (and succeed) after it
        lines = task.error().splitlines() or ["(it printed nothing)"]
        print(f"failed     {task.name} after {task.seconds:.1f} s", file=out)
        print(f"error      {lines[0]}", file=out)
        for line in lines[1:]:
            print(f"           {line}", file=out)
    else:
        print(f"error      {ANSI_CODES.sub('', str(exc))}", file=out)
    print(f"log        {run.log}", file=out)


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command")
    train = commands.add_parser("train", help="train, evaluate and register (the default)")
    score = commands.add_parser("score", help="score a file with a registered model (batch-scoring)")
    for sub in (train, score):
        sub.add_argument("--config", default=DEFAULT_CONFIG, help=f"data-set config (default {DEFAULT_CONFIG})")
        sub.add_argument("--model-name", help="override the config's registry.model_name")
        sub.add_argument(
            "--workdir",
            default=DEFAULT_WORKDIR,
            help=f"pipeline root and default MLflow store (default {DEFAULT_WORKDIR})",
        )
        sub.add_argument("--json", action="store_true", help="print the result as JSON")
    train.add_argument("--data-uri", help="override the config's data_uri (local path or s3://)")
    train.add_argument(
        "--margin", type=margin_value, help="override the config's registry.margin (a finite number >= 0)"
    )
    score.add_argument("--input-uri", help="rows to score (default: the config's data_uri)")
    score.add_argument("--alias", default="champion", help="model alias to score with (default champion)")
    score.add_argument("--chunk-rows", type=int, default=50000, help="rows per chunk (bounds memory)")
    score.add_argument("--output-uri", default="", help="also copy predictions to this path or s3:// URI")
    if not argv or argv[0] not in ("train", "score", "-h", "--help"):
        argv = ["train", *argv]
    return parser.parse_args(argv)


def run_command(args: argparse.Namespace, config, workdir: Path) -> dict:
    if args.command == "score":
        return run_scoring(
            config,
            args.input_uri or config.data_uri,
            workdir,
            args.model_name,
            args.alias,
            args.chunk_rows,
            args.output_uri,
        )
    return run_training(config, workdir, args.data_uri, args.model_name, args.margin)


def verbose() -> bool:
    return os.environ.get("VERBOSE", "").strip().lower() not in ("", "0", "false", "no")


def main(argv: list[str] | None = None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    from lifecycle.dataset.config import ConfigError, load_config

    workdir = Path(args.workdir)
    started = time.perf_counter()
    # With --json, stdout carries the JSON alone.
    out = sys.stderr if args.json else sys.stdout
    try:
        config = load_config(args.config)
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    pipeline = "batch-scoring" if args.command == "score" else "training"
    log = open_log(workdir / "logs", f"{pipeline}-{time.strftime('%Y%m%d-%H%M%S')}")
    try:
        with follow(log, out, verbose()) as run:
            result = run_command(args, config, workdir)
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except RuntimeError as exc:  # kfp.local raises this when a task fails
        print_failure(run, exc, sys.stderr)
        return 1
    except BaseException:  # a bug or Ctrl-C: Python shows the traceback; the log shows how far the run got
        print(f"log        {log}", file=sys.stderr)
        raise
    if args.json:
        print(json.dumps(result, indent=2, sort_keys=True))
        print(f"log        {log}", file=out)
    elif args.command == "score":
        print(
            f"\nscored {result['rows']} rows with {result['scored_with']} -> {shown(result['predictions'])}"
            + (f" (copied to {result['copied_to']})" if result["copied_to"] else "")
        )
        print(f"drift      {result['summary']}")
        print(f"report     {shown(result['report'])} (HTML; in MLflow: {result['report_in_mlflow']})")
        print(f"log        {shown(log)}")
    else:
        print_summary(result, time.perf_counter() - started, workdir, log)
    return 0


if __name__ == "__main__":
    sys.exit(main())
