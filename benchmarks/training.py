"""The local `training` pipeline against a plain single-process script doing the same work.

    python -m benchmarks.training [--config configs/ames.yaml] [--repeat 1]

Both sides start as fresh processes (imports are part of the cost), read the same file, use the
same config (same candidates, same folds, same seed), write the same reports and register in
their own fresh MLflow store on SQLite. The plain side calls the same `lifecycle` functions one
after another; the pipeline side is `python -m tools.run_local`, i.e. kfp.local with one
process per task and artifacts written between steps. Prints both wall times and their ratio.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TARGET_RATIO = 2.5


def plain_training(config_path: Path, workdir: Path) -> dict:
    """Every step of `training`, in order, in this one process, with nothing written in between."""
    from lifecycle.dataset.config import load_config
    from lifecycle.dataset.ingest import ingest_table, text_columns_of
    from lifecycle.dataset.process import process_frame, split_frame
    from lifecycle.dataset.validate import validate_frame
    from lifecycle.modelling.estimators import expand_search_space
    from lifecycle.modelling.evaluation import evaluation_report, holdout_metrics
    from lifecycle.modelling.features import build_featurizer, features_and_target
    from lifecycle.modelling.training import (
        cross_validate_candidate,
        fit_model,
        select_best,
    )
    from lifecycle.registry.registration import register_model
    from tools.run_local import ensure_experiment, prepare_tracking

    config = load_config(config_path)
    ensure_experiment(config.registry.model_name, prepare_tracking(workdir))
    table = ingest_table(str((ROOT / config.data_uri).resolve()), text_columns_of(config))
    validation = validate_frame(table.frame, config, config.data_uri)
    validation.raise_if_failed()
    train, test = split_frame(process_frame(table.frame, config), config)
    featurizer = build_featurizer(config).fit(features_and_target(train, config)[0])
    results = [cross_validate_candidate(train, featurizer, c, config) for c in expand_search_space(config)]
    best = select_best(results, config)
    model = fit_model(train, featurizer, best["candidate"], config)
    metrics = holdout_metrics(model, test, config)
    reports = workdir / "reports"
    reports.mkdir(parents=True, exist_ok=True)
    (reports / "validation.md").write_text(validation.to_markdown())
    (reports / "evaluation.html").write_text(
        evaluation_report(model, test, config, metrics, {"model": best["candidate"]["id"]})
    )
    registration = register_model(
        model,
        train,
        test,
        config,
        metrics,
        config.registry.model_name,
        config.registry.margin,
        lineage={"data_sha256": table.summary["sha256"]},
        artifacts={"evaluation.html": reports / "evaluation.html", "validation.md": reports / "validation.md"},
        params={"candidate": best["candidate"]["id"]},
    )
    return registration.to_dict()


def timed(command: list[str], env: dict) -> tuple[float, dict]:
    """Wall time of one fresh process, and the JSON summary it prints last."""
    start = time.perf_counter()
    done = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True)
    seconds = time.perf_counter() - start
    if done.returncode != 0:
        sys.exit(f"{' '.join(command)} failed:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}")
    return seconds, registration_summary(done.stdout)


def registration_summary(output: str) -> dict:
    """The last JSON object in a process's output that carries a registration's metrics."""
    decoder = json.JSONDecoder()
    start = len(output)
    while (start := output.rfind("{", 0, start)) >= 0:
        try:
            found, _ = decoder.raw_decode(output, start)
        except json.JSONDecodeError:
            continue
        if isinstance(found, dict) and "metrics" in found and "version" in found:
            return found
    raise ValueError("no registration summary in the output")


def run_side(side: str, config: Path, scratch: Path) -> tuple[float, dict]:
    workdir = scratch / side
    # Each side gets its own fresh SQLite registry; thread settings are each side's own default
    # (the pipeline runs its candidates two at a time with one OpenMP thread each).
    env = {k: v for k, v in os.environ.items() if k not in ("MLFLOW_TRACKING_URI", "OMP_NUM_THREADS")}
    if side == "pipeline":
        command = [
            sys.executable,
            "-m",
            "tools.run_local",
            "train",
            "--config",
            str(config),
            "--workdir",
            str(workdir),
            "--json",
        ]
    else:
        command = [
            sys.executable,
            "-m",
            "benchmarks.training",
            "--plain",
            "--config",
            str(config),
            "--workdir",
            str(workdir),
        ]
    return timed(command, env)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", type=Path, default=ROOT / "configs" / "ames.yaml")
    parser.add_argument("--repeat", type=int, default=1, help="runs per side, alternating (median reported)")
    parser.add_argument("--plain", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--workdir", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)

    if args.plain:
        print(json.dumps(plain_training(args.config.resolve(), args.workdir)))
        return 0

    times: dict[str, list[float]] = {"plain": [], "pipeline": []}
    metrics = {}
    with tempfile.TemporaryDirectory() as scratch:
        for i in range(args.repeat):
            for side in ("plain", "pipeline"):
                seconds, summary = run_side(side, args.config.resolve(), Path(scratch) / str(i))
                times[side].append(seconds)
                metrics[side] = summary["metrics"]
                print(
                    f"run {i + 1}/{args.repeat} {side:<9} {seconds:6.1f} s  ({summary['model_name']} "
                    f"v{summary['version']})",
                    flush=True,
                )

    plain, pipeline = statistics.median(times["plain"]), statistics.median(times["pipeline"])
    ratio = pipeline / plain
    print()
    print(
        "config                      "
        f"{args.config.relative_to(ROOT) if args.config.is_relative_to(ROOT) else args.config}"
    )
    print(f"cores                       {os.cpu_count()}")
    print(f"plain single-process script {plain:6.1f} s")
    print(f"kfp.local training pipeline {pipeline:6.1f} s")
    print(
        f"ratio pipeline / plain      {ratio:6.2f}  (target <= {TARGET_RATIO}: "
        f"{'met' if ratio <= TARGET_RATIO else 'NOT met'})"
    )
    # HistGradientBoosting sums histograms per thread: 2 threads vs 1 moves the last digits.
    drift = max(abs(metrics["plain"][k] - v) / abs(v) for k, v in metrics["pipeline"].items())
    print(f"holdout metrics, max relative difference {drift:.1e}")
    for name, value in sorted(metrics["pipeline"].items()):
        print(f"  {name:<12} pipeline {value:.5f}  plain {metrics['plain'][name]:.5f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
