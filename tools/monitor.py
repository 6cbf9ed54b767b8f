"""Runs the monitoring pipeline once on this machine: score a file, check drift, retrain on "drifted".

    python -m tools.monitor --config configs/telco_churn.yaml --input-uri FILE [--retrain-data-uri FILE]

MLFLOW_TRACKING_URI is honoured; without it the registry is the SQLite file `make run` uses. It
prints the verdict, the drifted columns and the report and, when it retrained, the new version and
whether it became champion. Exit code 0 whatever the verdict; 1 when a step fails.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from tools.capture import open_log
from tools.progress import follow
from tools.run_local import (
    DEFAULT_CONFIG,
    DEFAULT_WORKDIR,
    drift_outcome,
    ensure_experiment,
    git_commit,
    init_local_runner,
    margin_value,
    one_openmp_thread_per_task,
    prepare_tracking,
    print_failure,
    print_restored,
    shown,
    task_output,
    verbose,
)


def local_uri(uri: str) -> str:
    """A local path made absolute: the tasks may run in another directory."""
    return uri if not uri or "://" in uri else str(Path(uri).resolve())


def run_monitoring(
    config, input_uri: str, workdir: Path, retrain_data_uri: str = "", model_name: str | None = None, margin=None
) -> dict:
    """Runs `monitoring` through kfp.local; returns the verdict, the drift figures and, when it
    retrained, the register step's summary."""
    from lifecycle.dataset.config import DatasetConfig, config_as_json, load_config
    from pipelines.monitoring import monitoring

    if not isinstance(config, DatasetConfig):
        config = load_config(config)
    name = model_name or config.registry.model_name
    one_openmp_thread_per_task()  # it may retrain
    artifact_root = prepare_tracking(workdir)
    if artifact_root:
        ensure_experiment(name, artifact_root)
    init_local_runner(workdir)
    earlier = set((workdir / "pipeline_root").glob("monitoring-*"))
    retrain_from = local_uri(retrain_data_uri)
    if not retrain_from and "://" not in config.data_uri:
        retrain_from = local_uri(config.data_uri)  # the config's path, read from here, not from the task's directory
    with print_restored():
        monitoring(
            config=config_as_json(config),
            input_uri=local_uri(input_uri),
            model_name=name,
            retrain_data_uri=retrain_from,
            promotion_margin=config.registry.margin if margin is None else margin,
            git_commit=git_commit(),
        )
    run_dir = sorted(set((workdir / "pipeline_root").glob("monitoring-*")) - earlier)[0]
    scored = json.loads((run_dir / "score-batch" / "executor_output.json").read_text())
    retrained = (run_dir / "register-model" / "executor_output.json").is_file()
    return {
        "model_name": name,
        "rows": int(scored["artifacts"]["predictions"]["artifacts"][0]["metadata"]["rows"]),
        **drift_outcome(run_dir),
        "registration": task_output(run_dir, "register-model") if retrained else None,
    }


def print_outcome(result: dict) -> None:
    print()
    print(f"verdict    {result['verdict']} ({result['rows']} rows scored with {result['scored_with']})")
    print(f"drift      {result['summary']}")
    print(f"report     {shown(result['report'])} (HTML; in MLflow beside the version: {result['report_in_mlflow']})")
    registration = result["registration"]
    if registration is None:
        print("retrained  no")
        return
    champion = "champion" in registration["aliases"]
    print(f"retrained  {registration['model_name']} version {registration['version']}")
    print(f"champion   {'yes' if champion else 'no'}: {registration['promotion']['reason']}")


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", default=DEFAULT_CONFIG, help=f"data-set config (default {DEFAULT_CONFIG})")
    parser.add_argument("--input-uri", required=True, help="rows to score and check (local path or s3://)")
    parser.add_argument("--retrain-data-uri", default="", help="data to retrain on (default: the config's data_uri)")
    parser.add_argument("--model-name", help="override the config's registry.model_name")
    parser.add_argument("--margin", type=margin_value, help="override the config's registry.margin")
    parser.add_argument("--workdir", default=DEFAULT_WORKDIR, help=f"pipeline root, MLflow store ({DEFAULT_WORKDIR})")
    parser.add_argument("--json", action="store_true", help="print the result as JSON")
    args = parser.parse_args(argv)
    if not args.input_uri.strip():
        parser.error("--input-uri is empty: name the file of rows to score (make monitor DATA=file)")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    from lifecycle.dataset.config import ConfigError, load_config

    workdir = Path(args.workdir)
    out = sys.stderr if args.json else sys.stdout
    try:
        config = load_config(args.config)
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    log = open_log(workdir / "logs", f"monitoring-{time.strftime('%Y%m%d-%H%M%S')}")
    try:
        with follow(log, out, verbose()) as run:
            result = run_monitoring(
                config, args.input_uri, workdir, args.retrain_data_uri, args.model_name, args.margin
            )
    except RuntimeError as exc:  # kfp.local raises this when a task fails
        print_failure(run, exc, sys.stderr)
        return 1
    if args.json:
        print(json.dumps(result, indent=2, sort_keys=True))
    else:
        print_outcome(result)
    print(f"log        {shown(log)}", file=out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
