"""The cluster's data path on this machine, printing where each artifact goes.

    python tools/demo.py [--config configs/ames.yaml] [--workdir .local/stack-demo]

Starts the loopback stack (moto S3 + a real `mlflow server`, see docs/stack.md), then:
upload the raw CSV to S3 -> `training` through kfp.local reading s3:// -> the registered version's
artifacts in S3 -> download them as KServe's storage initializer does -> serve them with the
project's predictor -> `batch-scoring` writing predictions to S3 -> compare the two.
Everything stops at the end; S3 lives in memory, so each run starts from an empty registry.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SAMPLE_ROWS = 100


def say(label: str, text: str) -> None:
    print(f"{label:<12} {text}", flush=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "--config", default=str(ROOT / "configs" / "ames.yaml"), help="data-set config (default configs/ames.yaml)"
    )
    parser.add_argument(
        "--workdir", default=".local/stack-demo", help="registry, logs, pipeline root, model folder (emptied first)"
    )
    args = parser.parse_args(argv)

    import numpy as np
    import pandas as pd
    from kserve_storage import Storage
    from mlflow import MlflowClient
    from mlflow.models import Model

    from lifecycle.dataset.config import load_config
    from lifecycle.dataset.storage import parse_s3_uri, s3_client
    from tools.run_local import run_scoring, run_training
    from tools.stack import LoopbackStack, PredictorProcess

    config = load_config(args.config)
    data_path = (ROOT / config.data_uri) if not Path(config.data_uri).is_absolute() else Path(config.data_uri)
    workdir = Path(args.workdir).resolve()
    if workdir.exists():
        shutil.rmtree(workdir)  # S3 does not outlive the stack, so neither may the registry
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    started = time.perf_counter()
    summary: list[tuple[str, str]] = []

    with LoopbackStack(workdir) as stack:
        stack.apply_environment()
        say("stack", f"MLflow {stack.tracking_uri} (SQLite {stack.tracking.database}), S3 {stack.s3_endpoint}")
        say("", f"artifact root {stack.artifact_root}; server log {stack.tracking.log_path}")

        data_uri = f"s3://{stack.data_bucket}/{config.name}/{data_path.name}"
        location = parse_s3_uri(data_uri)
        s3_client().fput_object(location.bucket, location.key, str(data_path))
        summary.append(("raw data", data_uri))
        say("uploaded", f"{data_path.relative_to(ROOT)} -> {data_uri}")

        registration = run_training(config, workdir, data_uri=data_uri)
        name, version = registration["model_name"], registration["version"]
        client = MlflowClient()
        run = client.get_run(registration["run_id"])
        summary.append(("run", f"{stack.tracking_uri}/#/experiments/{run.info.experiment_id}/runs/{run.info.run_id}"))
        summary.append(("registered", f"models:/{name}/{version} aliases {', '.join(registration['aliases'])}"))

        download_uri = client.get_model_version_download_uri(name, version)
        where = parse_s3_uri(download_uri)
        objects = sorted(
            Path(o.object_name).name
            for o in s3_client().list_objects(where.bucket, prefix=where.key + "/", recursive=True)
        )
        summary.append(("model files", f"{download_uri} ({', '.join(objects)})"))

        model_dir = workdir / "mnt-models"
        Storage.download(download_uri, str(model_dir))
        summary.append(("downloaded", f"{model_dir} (as KServe's storage initializer fills /mnt/models)"))

        output_uri = f"s3://{stack.data_bucket}/predictions/{name}-v{version}.parquet"
        scored = run_scoring(config, data_uri, workdir, name, output_uri=output_uri)
        summary.append(("predictions", f"{output_uri} ({scored['rows']} rows; local copy {scored['predictions']})"))

        columns = Model.load(str(model_dir)).signature.inputs.input_names()
        raw = pd.read_csv(data_path).head(SAMPLE_ROWS)
        inputs = raw[[c for c in columns if c in raw.columns]]
        # The digest registration recorded, as the deploy step gives it to the InferenceService.
        model_sha256 = client.get_model_version(name, version).tags.get("model_sha256", "")
        log = workdir / "logs" / "predictor.log"
        with PredictorProcess(model_dir, name, log, model_sha256=model_sha256) as predictor:
            served = predictor.predict(json.loads(inputs.to_json(orient="records")))
            summary.append(("served", f"{predictor.predict_url} (log {predictor.log_path})"))
        batch = pd.read_parquet(scored["predictions"]).set_index("row").loc[range(SAMPLE_ROWS), "prediction"].to_numpy()
        same = bool(np.array_equal(np.asarray(served, dtype=batch.dtype), batch))
        summary.append(("compared", f"first {SAMPLE_ROWS} rows: served {'==' if same else '!='} batch-scored"))
        summary.append(("step outputs", str(workdir / "pipeline_root")))

    print()
    for label, text in summary:
        say(label, text)
    say("wall time", f"{time.perf_counter() - started:.0f} s (the stack is stopped; its S3 data is gone)")
    return 0 if same else 1


if __name__ == "__main__":
    sys.exit(main())
