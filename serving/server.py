"""Starting the KServe model server around `TabularModel`: the same entry point locally and in the image."""

from __future__ import annotations

import argparse
import atexit
import copy
import json
import logging
import os
import re
import sys
import tempfile
from dataclasses import dataclass

from lifecycle.deploy.inference_service import MODEL_VERSION_ENV
from serving.errors import ModelLoadError

DEFAULT_MODEL_DIR = "/mnt/models"  # where KServe's storage initializer puts the model
MB = 1 << 20
SHA256_HEX = re.compile(r"[0-9a-fA-F]{64}")


@dataclass(frozen=True)
class ServerOptions:
    model_uri: str
    model_name: str
    model_version: str | None = None
    port: int = 8080
    grpc_port: int = 8081
    workers: int = 1
    max_batch_size: int = 64
    max_batch_wait_ms: float = 0.0
    max_request_rows: int = 10_000
    predict_threads: int = 1
    parallel_rows: int = 256
    access_log: bool = False
    model_sha256: str | None = None
    max_body_bytes: int = 20 * MB
    max_queued_rows: int | None = None  # None: 4x max_request_rows
    body_timeout_seconds: float = 30.0
    max_connections: int = 128
    input_quality: bool = True


def parse_args(argv: list[str] | None = None) -> ServerOptions:
    env = os.environ.get
    p = argparse.ArgumentParser(
        prog="python -m serving",
        description="Serve a registered MLflow sklearn model with KServe (V1 and V2 protocols).",
    )
    p.add_argument(
        "--model-uri",
        default=env("MODEL_URI", DEFAULT_MODEL_DIR),
        help="models:/NAME@ALIAS, models:/NAME/VERSION or a model directory (default: $MODEL_URI or /mnt/models)",
    )
    p.add_argument(
        "--model-name",
        default=env("MODEL_NAME", "model"),
        help="name in the URL paths /v1/models/NAME and /v2/models/NAME",
    )
    p.add_argument(
        "--model-version",
        default=env(MODEL_VERSION_ENV),
        help="the registered version, echoed in V2 answers' model_version (default: $MODEL_VERSION)",
    )
    p.add_argument("--port", type=int, default=int(env("PORT", "8080")), help="HTTP port (listens on all interfaces)")
    p.add_argument(
        "--grpc-port",
        type=int,
        default=int(env("GRPC_PORT", "8081")),
        help="gRPC port of the Open Inference Protocol's GRPCInferenceService (default: $GRPC_PORT or 8081)",
    )
    p.add_argument(
        "--workers", type=int, default=int(env("WORKERS", "1")), help="server processes (each loads the model)"
    )
    p.add_argument("--max-batch-size", type=int, default=64, help="most rows scored in one model call")
    p.add_argument(
        "--max-batch-wait-ms",
        type=float,
        default=0.0,
        help="how long a batch may wait for more rows; 0 batches only what is already waiting",
    )
    p.add_argument("--max-request-rows", type=int, default=10_000, help="larger requests are refused with 400")
    p.add_argument("--predict-threads", type=int, default=1, help="model calls that may run at once")
    p.add_argument(
        "--parallel-rows",
        type=int,
        default=256,
        help="model calls of at least this many rows use every core; smaller ones one OpenMP thread",
    )
    p.add_argument("--access-log", action="store_true", help="log every request (costs throughput)")
    p.add_argument(
        "--model-sha256",
        default=env("MODEL_SHA256") or None,
        help="sha256 of the serialized model file, checked before it loads (default: $MODEL_SHA256; "
        "a models:/ URI reads it from the registered version's tag)",
    )
    p.add_argument(
        "--max-body-bytes",
        type=int,
        default=20 * MB,
        help="larger request bodies are refused with 413 before they are decoded, on every route (default: 20 MB)",
    )
    p.add_argument(
        "--max-queued-rows",
        type=int,
        default=None,
        help="rows that may wait for a model call; past it requests are refused with 503 and Retry-After "
        "(default: 4x --max-request-rows)",
    )
    p.add_argument(
        "--body-timeout-seconds",
        type=float,
        default=30.0,
        help="a request not fully arrived (headers and body) this long after its first byte is answered 408 "
        "and its connection closed (default: 30)",
    )
    p.add_argument(
        "--max-connections",
        type=int,
        default=128,
        help="open connections per server process; past it new requests are answered 503 (default: 128)",
    )
    p.add_argument(
        "--no-input-quality",
        dest="input_quality",
        action="store_false",
        help="do not count blanks, unseen categories and out-of-range numbers per column at /metrics",
    )
    a = p.parse_args(argv)
    for name in (
        "port",
        "grpc_port",
        "workers",
        "max_batch_size",
        "max_request_rows",
        "predict_threads",
        "parallel_rows",
        "max_body_bytes",
        "max_connections",
    ):
        if getattr(a, name) < 1:
            p.error(f"--{name.replace('_', '-')} must be at least 1")
    if a.max_batch_wait_ms < 0:
        p.error("--max-batch-wait-ms must not be negative")
    if not a.body_timeout_seconds > 0 or a.body_timeout_seconds == float("inf"):
        p.error(f"--body-timeout-seconds must be a positive number of seconds, got {a.body_timeout_seconds}")
    if a.max_queued_rows is not None and a.max_queued_rows < a.max_request_rows:
        p.error(
            f"--max-queued-rows ({a.max_queued_rows}) must be at least --max-request-rows ({a.max_request_rows}): "
            "a request of the most rows could never be queued"
        )
    if a.model_sha256 is not None and not SHA256_HEX.fullmatch(a.model_sha256):
        p.error(f"--model-sha256 must be 64 hexadecimal digits, got {a.model_sha256!r}")
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

    from serving.limits import RequestLimits, bounded_model_server
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
        options.max_batch_size,
        options.max_batch_wait_ms,
        options.max_request_rows,
        options.predict_threads,
        options.parallel_rows,
        options.max_queued_rows,
    )
    limits = RequestLimits(options.max_body_bytes, options.body_timeout_seconds, options.max_connections)
    model = TabularModel(
        options.model_name,
        options.model_uri,
        settings,
        options.model_version,
        model_sha256=options.model_sha256,
        limits=limits,
        input_quality=options.input_quality,
    )
    model.load()
    install_routes(model_server.app, model)
    server = bounded_model_server(
        limits,
        options.model_version,
        grpc_port=options.grpc_port,
        model_name=options.model_name,
        http_port=options.port,
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
