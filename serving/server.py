"""Starting the KServe model server around `TabularModel`: the same entry point locally and in the image."""

from __future__ import annotations

import argparse
import atexit
import copy
import json
import logging
import os
import sys
import tempfile
from dataclasses import dataclass

from serving.errors import ModelLoadError
from serving.inference_service import MODEL_VERSION_ENV

DEFAULT_MODEL_DIR = "/mnt/models"  # where KServe's storage initializer puts the model


@dataclass(frozen=True)
class ServerOptions:
    model_uri: str
    model_name: str
    model_version: str | None = None
    port: int = 8080
    workers: int = 1
    max_batch_size: int = 64
    max_batch_wait_ms: float = 0.0
    max_request_rows: int = 10_000
    predict_threads: int = 1
    parallel_rows: int = 256
    access_log: bool = False


def parse_args(argv: list[str] | None = None) -> ServerOptions:
    env = os.environ.get
    p = argparse.ArgumentParser(prog="python -m serving", description="Serve a registered MLflow sklearn model with KServe (V1 and V2 protocols).")
    p.add_argument("--model-uri", default=env("MODEL_URI", DEFAULT_MODEL_DIR), help="models:/NAME@ALIAS, models:/NAME/VERSION or a model directory (default: $MODEL_URI or /mnt/models)")
    p.add_argument("--model-name", default=env("MODEL_NAME", "model"), help="name in the URL paths /v1/models/NAME and /v2/models/NAME")
    p.add_argument("--model-version", default=env(MODEL_VERSION_ENV), help="the registered version, echoed in V2 answers' model_version (default: $MODEL_VERSION)")
    p.add_argument("--port", type=int, default=int(env("PORT", "8080")), help="HTTP port (listens on all interfaces)")
    p.add_argument("--workers", type=int, default=int(env("WORKERS", "1")), help="server processes (each loads the model)")
    p.add_argument("--max-batch-size", type=int, default=64, help="most rows scored in one model call")
    p.add_argument("--max-batch-wait-ms", type=float, default=0.0, help="how long a batch may wait for more rows; 0 batches only what is already waiting")
    p.add_argument("--max-request-rows", type=int, default=10_000, help="larger requests are refused with 400")
    p.add_argument("--predict-threads", type=int, default=1, help="model calls that may run at once")
    p.add_argument("--parallel-rows", type=int, default=256, help="model calls of at least this many rows use every core; smaller ones one OpenMP thread")
    p.add_argument("--access-log", action="store_true", help="log every request (costs throughput)")
    a = p.parse_args(argv)
    for name in ("workers", "max_batch_size", "max_request_rows", "predict_threads", "parallel_rows"):
        if getattr(a, name) < 1:
            p.error(f"--{name.replace('_', '-')} must be at least 1")
    if a.max_batch_wait_ms < 0:
        p.error("--max-batch-wait-ms must not be negative")
    return ServerOptions(**vars(a))


def log_config(access_log: bool) -> dict:
    """KServe's logging setup, with the per-request lines (uvicorn access, KServe timings) off by default."""
    from kserve.logging import KSERVE_LOG_CONFIG

    config = copy.deepcopy(KSERVE_LOG_CONFIG)
    if not access_log:
        config["loggers"]["uvicorn.access"]["level"] = "WARNING"
        config["loggers"]["kserve.trace"]["level"] = "WARNING"
    config["loggers"]["serving"] = {"handlers": ["kserve"], "level": "INFO", "propagate": False}
    config.setdefault("filters", {})["client_errors"] = {"()": "serving.errors.ClientErrorFilter"}
    config["handlers"]["kserve"].setdefault("filters", []).append("client_errors")
    return config


def serve(options: ServerOptions) -> None:
    """Loads and warms up the model, then serves until SIGTERM/SIGINT. Raises ModelLoadError."""
    # kserve.model_server parses sys.argv when imported; our options are not its options.
    sys.argv[1:] = []
    from kserve import logging as kserve_logging
    from kserve import model_server

    from serving.predictor import BatchSettings, TabularModel
    from serving.routes import install_routes

    config = log_config(options.access_log)
    kserve_logging.configure_logging(config)
    if options.workers > 1:
        # Worker processes are spawned and configure logging from a file of their own.
        with tempfile.NamedTemporaryFile("w", suffix=".json", prefix="serving-log-", delete=False) as f:
            json.dump(config, f)
        model_server.args.log_config_file = f.name
        atexit.register(os.unlink, f.name)

    settings = BatchSettings(
        options.max_batch_size, options.max_batch_wait_ms, options.max_request_rows, options.predict_threads, options.parallel_rows
    )
    model = TabularModel(options.model_name, options.model_uri, settings, options.model_version)
    model.load()
    install_routes(model_server.app, model)
    server = model_server.ModelServer(
        http_port=options.port,
        enable_grpc=False,
        workers=options.workers,
        enable_latency_logging=False,
        access_log_format=None,
    )
    server.start([model])


def main(argv: list[str] | None = None) -> int:
    options = parse_args(argv)
    try:
        serve(options)
    except ModelLoadError as exc:
        logging.getLogger("serving").error("cannot serve %s: %s", options.model_uri, exc)
        print(f"error: cannot serve {options.model_uri}: {exc}", file=sys.stderr)
        return 1
    return 0
