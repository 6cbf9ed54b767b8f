"""Checks the model the e2e run registered: the alias resolves, it came from the submitted KFP
run, and its holdout metrics were logged. Prints them and optionally appends a Markdown table.

    python scripts/e2e-registry.py --tracking-uri http://localhost:5000 --model ames-house-prices \\
        [--alias champion] [--pipeline-run-id RUN_ID] [--summary $GITHUB_STEP_SUMMARY]

The tracking server requires authentication: MLflow's client takes the user and password from
MLFLOW_TRACKING_USERNAME and MLFLOW_TRACKING_PASSWORD (the Secret mlflow-credentials in the cluster).

Exit code 1 names what is missing or does not match, or that the registry refused the credentials.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

# What MLflow's client calls a 401 and a 403: a refusal, not a missing alias.
REFUSED = {"UNAUTHENTICATED", "PERMISSION_DENIED"}


def registered_model_report(tracking_uri: str, model: str, alias: str, pipeline_run_id: str = "") -> dict:
    from mlflow import MlflowClient
    from mlflow.exceptions import MlflowException

    from lifecycle.urls import mask_credentials

    registry = mask_credentials(tracking_uri)
    client = MlflowClient(tracking_uri=tracking_uri, registry_uri=tracking_uri)
    try:
        version = client.get_model_version_by_alias(model, alias)
    except MlflowException as exc:
        if exc.error_code in REFUSED:
            raise SystemExit(
                f"error: the registry at {registry} refused the request ({exc.error_code}); "
                f"check MLFLOW_TRACKING_USERNAME and MLFLOW_TRACKING_PASSWORD: {mask_credentials(str(exc))}"
            ) from None
        raise SystemExit(
            f"error: {model}@{alias} is not in the registry at {registry}: {mask_credentials(str(exc))}"
        ) from None
    recorded_run = version.tags.get("pipeline_run_id", "")
    if pipeline_run_id and recorded_run != pipeline_run_id:
        raise SystemExit(
            f"error: {model}@{alias} is version {version.version} from KFP run {recorded_run or '(none)'}, not "
            f"{pipeline_run_id}"
        )
    metrics = {k: v for k, v in client.get_run(version.run_id).data.metrics.items() if k.startswith("test_")}
    if not metrics:
        raise SystemExit(f"error: {model} v{version.version} (MLflow run {version.run_id}) has no test_* metrics")
    return {
        "model": model,
        "alias": alias,
        "version": version.version,
        "mlflow_run_id": version.run_id,
        "pipeline_run_id": recorded_run,
        "download_uri": client.get_model_version_download_uri(model, version.version),
        "metrics": dict(sorted(metrics.items())),
    }


def markdown(report: dict) -> str:
    lines = [
        f"### Registered model `{report['model']}` v{report['version']} (@{report['alias']})",
        "",
        f"- KFP run `{report['pipeline_run_id']}`, MLflow run `{report['mlflow_run_id']}`",
        f"- artifacts `{report['download_uri']}`",
        "",
        "| holdout metric | value |",
        "| --- | --- |",
    ]
    lines += [f"| {name} | {value:.4f} |" for name, value in report["metrics"].items()]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tracking-uri", required=True)
    parser.add_argument("--model", required=True)
    parser.add_argument("--alias", default="champion")
    parser.add_argument(
        "--pipeline-run-id", default="", help="fail unless the version's pipeline_run_id tag is this run"
    )
    parser.add_argument("--summary", type=Path, help="append a Markdown table to this file")
    args = parser.parse_args(argv)
    report = registered_model_report(args.tracking_uri, args.model, args.alias, args.pipeline_run_id)
    text = markdown(report)
    print(text)
    if args.summary:
        with args.summary.open("a") as summary:
            summary.write(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
