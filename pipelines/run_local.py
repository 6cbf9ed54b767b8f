"""Runs the training pipeline on this machine with kfp.local: no cluster, MLflow on SQLite.

    python -m pipelines.run_local [--config configs/ames.yaml] [--workdir .local]

MLFLOW_TRACKING_URI is honoured; without it the registry is a SQLite file in the work directory.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

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


def run_training(config_path: str, workdir: Path, data_uri: str | None = None, model_name: str | None = None, margin: float | None = None) -> dict:
    """Runs `training` through kfp.local and returns the register step's summary."""
    from kfp import local

    from lifecycle.config import config_as_json, load_config
    from pipelines.training import training

    config = load_config(config_path)
    # kfp.local runs ParallelFor iterations as concurrent processes on this one machine; OpenMP
    # (HistGradientBoosting) spinning in every one of them oversubscribes the cores and runs
    # many times slower than one thread each.
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    artifact_root = prepare_tracking(workdir)
    name = model_name or config.registry.model_name
    if artifact_root:
        ensure_experiment(name, artifact_root)
    local.init(
        runner=local.SubprocessRunner(use_venv=False),
        pipeline_root=str((workdir / "pipeline_root").resolve()),
        raise_on_error=True,
    )
    run = training(
        config=config_as_json(config),
        data_uri=data_uri or config.data_uri,
        model_name=name,
        promotion_margin=config.registry.margin if margin is None else margin,
        git_commit=git_commit(),
    )
    return run.output


def print_summary(registration: dict, seconds: float, workdir: Path) -> None:
    promotion = registration["promotion"]
    print()
    print(f"model      {registration['model_name']} version {registration['version']}")
    print(f"aliases    {', '.join(registration['aliases'])}")
    print(f"promotion  {promotion['reason']}")
    for name, value in sorted(registration["metrics"].items()):
        print(f"{name:<14} {value:.4f}")
    print(f"tracking   {os.environ['MLFLOW_TRACKING_URI']} (run {registration['run_id']})")
    print(f"reports    {(workdir / 'pipeline_root').resolve()} (evaluate-model/report, validate-dataset/report)")
    print(f"wall time  {seconds:.1f} s")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", default=DEFAULT_CONFIG, help=f"data-set config (default {DEFAULT_CONFIG})")
    parser.add_argument("--data-uri", help="override the config's data_uri (local path or s3://)")
    parser.add_argument("--model-name", help="override the config's registry.model_name")
    parser.add_argument("--margin", type=float, help="override the config's registry.margin")
    parser.add_argument("--workdir", default=DEFAULT_WORKDIR, help=f"pipeline root and default MLflow store (default {DEFAULT_WORKDIR})")
    parser.add_argument("--json", action="store_true", help="print the registration as JSON")
    args = parser.parse_args(argv)

    from lifecycle.config import ConfigError

    workdir = Path(args.workdir)
    started = time.perf_counter()
    try:
        registration = run_training(args.config, workdir, args.data_uri, args.model_name, args.margin)
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except RuntimeError as exc:  # kfp.local raises this when a task fails; the task's log says why
        print(f"error: {exc}", file=sys.stderr)
        return 1
    if args.json:
        print(json.dumps(registration, indent=2, sort_keys=True))
    else:
        print_summary(registration, time.perf_counter() - started, workdir)
    return 0


if __name__ == "__main__":
    sys.exit(main())
