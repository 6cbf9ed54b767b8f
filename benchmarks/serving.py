"""Our KServe predictor against `mlflow models serve`, MLServer and in-process `model.predict`.

    python -m benchmarks.serving [--quick] [--only ours,mlflow,mlserver,inprocess] [--json out.json]

All on the registered Ames model (`models:/ames-house-prices@champion` in MLFLOW_TRACKING_URI,
default the SQLite registry `make run` writes in .local/). Each server runs as its own process on
a free loopback port, is waited for until ready, checked to give the in-process prediction,
measured and stopped. One-row requests at concurrency 1, 8 and 32, then 1,000-row requests one
after another. The requests are a real held-out row (and held-out rows for the batches) from
data/ames.csv.gz, with the model's signature columns; servers that speak the same protocol get
the same request bytes. MLServer runs from its own virtualenv (.bench/mlserver-venv, made on first
use from benchmarks/mlserver-requirements.txt), since its pins clash with this project's.

The load generator (benchmarks/loadgen.py) runs on the same machine as the server it measures,
so on a small machine the figures include its cost.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

from benchmarks.loadgen import LevelResult, Target, fetch, measure
from lifecycle.contract.protocol import (
    answer_predictions,
    parse_answer,
    records_from_frame,
    v1_columns_request,
    v1_predict_path,
    v1_request,
    v2_infer_path,
    v2_ready_path,
    v2_request,
)

ROOT = Path(__file__).resolve().parents[1]
os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")  # read when mlflow is imported, later

MODEL_NAME = "ames-house-prices"
MODEL_URI = f"models:/{MODEL_NAME}@champion"
CONFIG = ROOT / "configs" / "ames.yaml"
BENCH_DIR = ROOT / ".bench"
MLSERVER_VENV = BENCH_DIR / "mlserver-venv"
MLSERVER_REQUIREMENTS = ROOT / "benchmarks" / "mlserver-requirements.txt"
CONCURRENCY = (1, 8, 32)
GRPC_CONCURRENCY = (1, 32)
# The tuned runs keep histogram gradient boosting's OpenMP pool to one thread: with the event loop,
# the load generator and the pool's threads on 2 cores, spinning OpenMP threads wait on each other.
ONE_THREAD = {"OMP_NUM_THREADS": "1"}
BATCH_ROWS = 1000


@dataclass(frozen=True)
class Budget:
    warmup: float  # seconds of requests not counted, per level
    duration: float  # seconds measured per level (at most)
    max_requests: int  # requests measured per level (at most)
    batch_duration: float
    batch_requests: int
    inprocess_seconds: float
    paired_requests: int  # c1 requests (and as many in-process predicts) for the overhead figure
    paired_batches: int  # 1,000-row requests (and as many in-process predicts) for the batch ratio


FULL = Budget(
    warmup=1.0,
    duration=8.0,
    max_requests=20_000,
    batch_duration=8.0,
    batch_requests=200,
    inprocess_seconds=3.0,
    paired_requests=150,
    paired_batches=60,
)
QUICK = Budget(
    warmup=0.5,
    duration=2.0,
    max_requests=3_000,
    batch_duration=2.0,
    batch_requests=20,
    inprocess_seconds=1.0,
    paired_requests=30,
    paired_batches=10,
)

# What each target compares; "ours" is the predictor in its default settings.
TARGETS = {
    "c32_vs_mlserver": 2.0,  # ours (V2) requests/s >= 2x MLServer best (V2)
    "c32_vs_mlflow": 20.0,  # ours (V1) requests/s >= 20x mlflow models serve
    "c32_p99_ms": 150.0,
    "c1_p50_overhead_ms": 3.0,  # ours p50 - in-process p50 of a one-row predict
    "batch_vs_inprocess": 0.7,  # ours rows/s for 1,000-row requests >= 0.7x in-process (paired blocks)
}


# ---------------------------------------------------------------- requests


def compact(body: dict) -> bytes:
    return json.dumps(body, separators=(",", ":")).encode()


@dataclass
class Workload:
    """The held-out rows, as frames (for in-process predict, and for the request bodies made from them)."""

    frame_one: object  # pandas DataFrame of one row, with the signature's dtypes
    frame_batch: object  # BATCH_ROWS rows (cycled when the holdout is smaller)
    source: str  # which row of which file

    # Each makes a request body from a frame; Protocol.encode names one.
    def v1(self, frame) -> bytes:
        """V1 with one object per row: every row repeats the 73 column names."""
        return compact(v1_request(frame))

    def v1_columns(self, frame) -> bytes:
        """V1 with one array per column, the layout for batches."""
        return compact(v1_columns_request(frame))

    def mlflow(self, frame) -> bytes:
        return compact({"dataframe_records": records_from_frame(frame)})

    def v2(self, frame) -> bytes:
        """Open Inference Protocol, one tensor per column, read as a pandas frame ("pd")."""
        return compact(v2_request(frame, parameters={"content_type": "pd"}))


def build_workload(model_uri: str) -> Workload:
    """Held-out rows (the same seeded split the training pipeline makes) without missing values."""
    import pandas as pd
    from mlflow.models import Model

    from lifecycle.contract.signature import signature_columns
    from lifecycle.dataset.config import load_config
    from lifecycle.dataset.ingest import ingest_table, text_columns_of
    from lifecycle.dataset.process import process_frame, split_frame
    from lifecycle.scoring.batch import conform_to_signature

    config = load_config(CONFIG)
    table = ingest_table(str((ROOT / config.data_uri).resolve()), text_columns_of(config))
    _, test = split_frame(process_frame(table.frame, config), config)
    columns = signature_columns(Model.load(model_uri).signature, model_uri)
    names = [c.name for c in columns]
    missing = [n for n in names if n not in test]
    if missing:
        sys.exit(
            f"error: {config.data_uri} lacks the model's input column(s) {', '.join(missing)}: "
            f"is {model_uri} an Ames model?"
        )
    required = [c.name for c in columns if c.required]
    usable = test.dropna(subset=required).reset_index(drop=True)  # a missing required value is refused
    # The one-row request: the first held-out row with a value in every column (no nulls in its tensors).
    complete = usable.index[usable[names].notna().all(axis=1)]
    if usable.empty or complete.empty:
        sys.exit(f"error: no held-out row of {config.data_uri} has a value in every input column")
    frame = conform_to_signature(usable[names], columns, config.data_uri)
    first = int(complete[0])
    order = [first] + [i for i in range(len(frame)) if i != first]
    batch = frame.iloc[[order[i % len(order)] for i in range(BATCH_ROWS)]].reset_index(drop=True)
    return Workload(
        frame_one=frame.iloc[[first]].reset_index(drop=True),
        frame_batch=pd.DataFrame(batch),
        source=(
            f"{config.data_uri}, held-out split (seed {config.split.seed}, {len(frame)} rows; "
            f"batches cycle through them, optional columns may be null)"
        ),
    )


# ---------------------------------------------------------------- servers


@dataclass
class Protocol:
    label: str  # "V1", "V1 columns", "V2", "mlflow"
    path: str
    encode: str  # Workload method that makes the body
    batches_only: bool = False  # measured with 1,000-row requests only (no one-row levels)


@dataclass
class Server:
    name: str
    family: str  # what --only selects on
    describe: str
    protocols: list[Protocol]
    ready_path: str
    command: list[str] = field(default_factory=list)
    env: dict = field(default_factory=dict)
    cwd: Path = ROOT
    grpc_port: int | None = None  # measured over gRPC too (one-row requests, c1 and c32)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def base_env(tracking_uri: str, venv_bin: Path) -> dict:
    env = dict(os.environ)
    env["MLFLOW_TRACKING_URI"] = tracking_uri
    env["PATH"] = f"{venv_bin}{os.pathsep}{env.get('PATH', '')}"  # mlflow models serve execs uvicorn
    env["PYTHONUNBUFFERED"] = "1"
    return env


def ours(
    name: str, describe: str, extra: list[str], tracking_uri: str, env: dict | None = None, grpc: bool = False
) -> Server:
    port, grpc_port = free_port(), free_port()
    return Server(
        name=name,
        family="ours",
        describe=describe,
        protocols=[
            Protocol("V1", v1_predict_path(MODEL_NAME), "v1"),
            Protocol("V1 columns", v1_predict_path(MODEL_NAME), "v1_columns", batches_only=True),
            Protocol("V2", v2_infer_path(MODEL_NAME), "v2"),
        ],
        ready_path=v2_ready_path(MODEL_NAME),
        command=[
            sys.executable,
            "-m",
            "serving",
            "--model-uri",
            MODEL_URI,
            "--model-name",
            MODEL_NAME,
            "--port",
            str(port),
            "--grpc-port",
            str(grpc_port),
            *extra,
        ],
        env={**base_env(tracking_uri, Path(sys.executable).parent), **(env or {})},
        grpc_port=grpc_port if grpc else None,
    )


def mlflow_serve(tracking_uri: str) -> Server:
    port = free_port()
    venv_bin = Path(sys.executable).parent
    return Server(
        name="mlflow",
        family="mlflow",
        describe="mlflow models serve --env-manager local (defaults)",
        protocols=[Protocol("mlflow", "/invocations", "mlflow")],
        ready_path="/ping",
        command=[
            str(venv_bin / "mlflow"),
            "models",
            "serve",
            "-m",
            MODEL_URI,
            "--env-manager",
            "local",
            "-h",
            "127.0.0.1",
            "-p",
            str(port),
        ],
        env=base_env(tracking_uri, venv_bin),
    )


def mlserver(
    name: str,
    describe: str,
    model_dir: Path,
    workdir: Path,
    settings: dict,
    model_settings: dict,
    tracking_uri: str,
    extra_env: dict | None = None,
) -> Server:
    """An MLServer model repository of one model, in `workdir`; its MLflow runtime reads `model_dir`."""
    port = free_port()
    repo = workdir / name
    (repo / MODEL_NAME).mkdir(parents=True, exist_ok=True)
    server_settings = {
        "host": "127.0.0.1",
        "http_port": port,
        "grpc_port": free_port(),
        "metrics_port": free_port(),
        **settings,
    }
    (repo / "settings.json").write_text(json.dumps(server_settings, indent=2))
    (repo / MODEL_NAME / "model-settings.json").write_text(
        json.dumps(
            {
                "name": MODEL_NAME,
                "implementation": "mlserver_mlflow.MLflowRuntime",
                "parameters": {"uri": str(model_dir)},
                **model_settings,
            },
            indent=2,
        )
    )
    venv_bin = MLSERVER_VENV / "bin"
    env = base_env(tracking_uri, venv_bin)
    env.pop("VIRTUAL_ENV", None)
    # The model holds one of the project's classes (lifecycle.modelling.features.PrepareInputs), as a
    # trusted skops type: the runtime must be able to import it, like our predictor does.
    env["PYTHONPATH"] = str(ROOT)
    env.update(extra_env or {})
    return Server(
        name=name,
        family="mlserver",
        describe=describe,
        protocols=[Protocol("V2", v2_infer_path(MODEL_NAME), "v2")],
        ready_path=v2_ready_path(MODEL_NAME),
        command=[str(venv_bin / "mlserver"), "start", str(repo)],
        env=env,
        cwd=repo,
    )


def server_port(server: Server) -> int:
    if server.family == "mlserver":
        return json.loads((server.cwd / "settings.json").read_text())["http_port"]
    flag = "--port" if "--port" in server.command else "-p"
    return int(server.command[server.command.index(flag) + 1])


class Running:
    """A server process in its own process group, its output in a log file."""

    def __init__(self, server: Server, log_path: Path):
        self.server = server
        self.port = server_port(server)
        self.log_path = log_path
        self.log = open(log_path, "wb")  # noqa: SIM115 (open while the server runs, closed in stop())
        self.process = subprocess.Popen(
            server.command,
            cwd=server.cwd,
            env=server.env,
            stdout=self.log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    def wait_ready(self, timeout: float) -> float:
        """Seconds until the ready URL answers 200; raises RuntimeError with the log's tail."""
        start = time.perf_counter()
        url = f"http://127.0.0.1:{self.port}{self.server.ready_path}"
        while time.perf_counter() - start < timeout:
            if self.process.poll() is not None:
                raise RuntimeError(f"{self.server.name} exited with code {self.process.returncode}:\n{self.tail()}")
            try:
                with urllib.request.urlopen(url, timeout=2) as response:
                    if response.status == 200:
                        return time.perf_counter() - start
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                pass
            time.sleep(0.25)
        raise RuntimeError(f"{self.server.name} not ready after {timeout:.0f} s:\n{self.tail()}")

    def tail(self, chars: int = 3000) -> str:
        self.log.flush()
        return self.log_path.read_bytes()[-chars:].decode("utf-8", "replace")

    def stop(self) -> None:
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(15)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()
        self.log.close()


# ---------------------------------------------------------------- MLServer's virtualenv


def ensure_mlserver_venv() -> Path:
    """`.bench/mlserver-venv` with benchmarks/mlserver-requirements.txt, made or remade when the file changes."""
    wanted = hashlib.sha256(MLSERVER_REQUIREMENTS.read_bytes()).hexdigest()
    stamp = MLSERVER_VENV / ".requirements-sha256"
    if stamp.is_file() and stamp.read_text().strip() == wanted and (MLSERVER_VENV / "bin" / "mlserver").exists():
        return MLSERVER_VENV
    print(f"creating {MLSERVER_VENV} from {MLSERVER_REQUIREMENTS.relative_to(ROOT)} (a few minutes, once)", flush=True)
    if MLSERVER_VENV.exists():
        shutil.rmtree(MLSERVER_VENV)
    MLSERVER_VENV.parent.mkdir(parents=True, exist_ok=True)
    base_python = getattr(sys, "_base_executable", sys.executable)
    subprocess.run([base_python, "-m", "venv", str(MLSERVER_VENV)], check=True)
    pip = [str(MLSERVER_VENV / "bin" / "python"), "-m", "pip", "install", "--quiet"]
    subprocess.run([*pip, "--upgrade", "pip"], check=True)
    subprocess.run([*pip, "-r", str(MLSERVER_REQUIREMENTS)], check=True)
    stamp.write_text(wanted + "\n")
    return MLSERVER_VENV


# ---------------------------------------------------------------- measuring


@dataclass
class Row:
    """One line of the table: a system spoken to over one protocol."""

    system: str
    protocol: str
    describe: str
    levels: dict[int, LevelResult] = field(default_factory=dict)
    batch: LevelResult | None = None
    ready_s: float | None = None
    paired_overhead_ms: float | None = None  # c1: p50 over the server - p50 in-process, in neighbouring blocks
    paired_batch_ratio: float | None = (
        None  # 1,000-row requests: rows/s over the server / in-process, in neighbouring blocks
    )
    prediction_ok: bool | None = None
    failure: str | None = None

    def to_dict(self) -> dict:
        return {
            "system": self.system,
            "protocol": self.protocol,
            "describe": self.describe,
            "levels": {str(c): r.to_dict() for c, r in self.levels.items()},
            "batch": self.batch.to_dict() if self.batch else None,
            "ready_s": self.ready_s,
            "paired_overhead_ms": self.paired_overhead_ms,
            "paired_batch_ratio": self.paired_batch_ratio,
            "prediction_ok": self.prediction_ok,
            "failure": self.failure,
        }


def predictions(body: bytes) -> list[float]:
    """The predictions of a V1, V2 or `mlflow models serve` answer, as numbers."""
    values = answer_predictions(parse_answer(body))
    return [float(next(iter(v.values())) if isinstance(v, dict) else v) for v in values]  # mlflow may answer records


def same(got: list[float], expected: list[float]) -> bool:
    return len(got) == len(expected) and all(
        math.isclose(a, b, rel_tol=1e-6, abs_tol=1e-9) for a, b in zip(got, expected, strict=False)
    )


def paired_blocks(
    target: Target, model, frame, requests: int, threads: int | None
) -> tuple[list[LevelResult], list[float]]:
    """Requests to the server and `model.predict(frame)` here, measured in blocks: in-process,
    server, in-process, server, in-process.

    Other work on the machine comes and goes; blocks next to each other put both sides under about
    the same load, so their difference is what the server adds. The server blocks use the same
    client as the levels. Returns the server blocks and the in-process latencies (s).
    """
    from contextlib import nullcontext

    limit = nullcontext()
    if threads is not None:
        from threadpoolctl import threadpool_limits

        limit = threadpool_limits(limits=threads)
    block = max(requests // 2, 5)
    served, local = [], []
    with limit:
        for _ in range(3):
            model.predict(frame)
        for turn in range(5):
            if turn % 2:
                served.append(measure(target, 1, 0.0, 60.0, block))
                continue
            for _ in range(block):
                start = time.perf_counter()
                model.predict(frame)
                local.append(time.perf_counter() - start)
    return served, local


def paired_overhead(target: Target, model, frame, requests: int, threads: int | None) -> tuple[float, float]:
    """(server p50, in-process p50) of one-row requests in ms, from neighbouring blocks."""
    served, local = paired_blocks(target, model, frame, requests, threads)
    return statistics.mean(b.p50_ms for b in served), statistics.median(local) * 1000


def paired_batch_ratio(target: Target, model, frame, requests: int, threads: int | None) -> tuple[float, float]:
    """(server rows/s, in-process rows/s) of 1,000-row requests one after another, from neighbouring blocks."""
    served, local = paired_blocks(target, model, frame, requests, threads)
    served_s = sum(b.mean_ms * b.requests for b in served) / sum(b.requests for b in served) / 1000
    return BATCH_ROWS / served_s, BATCH_ROWS / statistics.mean(local)


def failure_summary(text: str) -> str:
    """The first line and the last error-looking line of a server's failure (its log's tail)."""
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    errors = [line for line in lines[1:] if "Error" in line or "error" in line or "Couldn't" in line]
    return lines[0] + (f" ... {errors[-1]}" if errors else "")


def measure_server(
    server: Server,
    workload: Workload,
    budget: Budget,
    expected: dict[str, list[float]],
    logs: Path,
    ready_timeout: float,
    model,
) -> list[Row]:
    rows = [Row(server.name, p.label, server.describe) for p in server.protocols]
    print(f"\n== {server.name}: {server.describe}", flush=True)
    running = Running(server, logs / f"{server.name}.log")
    try:
        try:
            ready = running.wait_ready(ready_timeout)
        except RuntimeError as exc:
            for row in rows:
                row.failure = failure_summary(str(exc))
            print(f"   {exc}", flush=True)
            return rows
        print(f"   ready in {ready:.1f} s on port {running.port} (log {running.log_path})", flush=True)
        for protocol, row in zip(server.protocols, rows, strict=False):
            row.ready_s = round(ready, 1)
            encode = getattr(workload, protocol.encode)
            one = Target(running.port, protocol.path, encode(workload.frame_one))
            batch = Target(running.port, protocol.path, encode(workload.frame_batch))
            kinds = (("batch", batch),) if protocol.batches_only else (("one", one), ("batch", batch))
            answers = {}
            for kind, target in kinds:
                status, body = fetch(target)
                if status != 200:
                    row.failure = f"HTTP {status} for the {kind} request: {body[:300].decode('utf-8', 'replace')}"
                    break
                answers[kind] = predictions(body)
            if row.failure:
                print(f"   {protocol.label}: {row.failure}", flush=True)
                continue
            row.prediction_ok = all(same(answers[kind], expected[kind]) for kind, _ in kinds)
            print(
                f"   {protocol.label}: {' and '.join(kind for kind, _ in kinds)} answers "
                f"{'match' if row.prediction_ok else 'DIFFER FROM'} in-process predict",
                flush=True,
            )
            if not protocol.batches_only:
                measure_rows(row, protocol, one, server, workload, budget, model)
            result = measure(batch, 1, 0.0, budget.batch_duration, budget.batch_requests, rows_per_request=BATCH_ROWS)
            if result.requests:  # one request after another: rows over the time spent in them
                result.rows_per_s = BATCH_ROWS / (result.mean_ms / 1000)
            row.batch = result
            print(
                f"   {protocol.label} {BATCH_ROWS}-row requests: {result.rows_per_s:9.0f} rows/s  "
                f"p50 {result.p50_ms:7.1f} ms  errors {result.errors}",
                flush=True,
            )
            served, local = paired_batch_ratio(batch, model, workload.frame_batch, budget.paired_batches, None)
            row.paired_batch_ratio = served / local
            print(
                f"   {protocol.label} {BATCH_ROWS}-row requests next to in-process predict: {served:,.0f} rows/s "
                f"vs {local:,.0f} rows/s in-process ({row.paired_batch_ratio:.2f}x)",
                flush=True,
            )
        if server.grpc_port:
            rows.append(measure_grpc(server, workload, budget, expected["one"]))
    finally:
        running.stop()
    return rows


def level_line(label: str, result: LevelResult) -> str:
    """One concurrency level, as the run prints it."""
    return (
        f"   {label} c={result.concurrency:<3} {result.rps:8.1f} req/s  p50 {result.p50_ms:7.2f} ms  "
        f"p99 {result.p99_ms:8.2f} ms  errors {result.errors}"
        + (f"  e.g. {result.error_samples[0][:160]}" if result.error_samples else "")
    )


def measure_grpc(server: Server, workload: Workload, budget: Budget, expected: list[float]) -> Row:
    """One-row requests over the protocol's gRPC service (raw tensor contents), at c1 and c32."""
    from benchmarks import grpc_load

    row = Row(server.name, "gRPC", server.describe)
    address = f"127.0.0.1:{server.grpc_port}"
    request = grpc_load.infer_request(MODEL_NAME, workload.frame_one)
    row.prediction_ok = same(grpc_load.infer_once(address, request), expected)
    print(f"   gRPC: one answer {'matches' if row.prediction_ok else 'DIFFERS FROM'} in-process predict", flush=True)
    for concurrency in GRPC_CONCURRENCY:
        result = grpc_load.measure(address, request, concurrency, budget.warmup, budget.duration, budget.max_requests)
        row.levels[concurrency] = result
        print(level_line("gRPC", result), flush=True)
    return row


def measure_rows(
    row: Row, protocol: Protocol, one: Target, server: Server, workload: Workload, budget: Budget, model
) -> None:
    """One-row requests: c1 next to in-process predict, then each concurrency level."""
    threads = 1 if server.env.get("OMP_NUM_THREADS") == "1" else None
    served, local = paired_overhead(one, model, workload.frame_one, budget.paired_requests, threads)
    row.paired_overhead_ms = served - local
    print(
        f"   {protocol.label} c=1 next to in-process predict: p50 {served:.2f} ms vs {local:.2f} ms in-process "
        f"(+{served - local:.2f} ms)",
        flush=True,
    )
    for concurrency in CONCURRENCY:
        result = measure(one, concurrency, budget.warmup, budget.duration, budget.max_requests)
        row.levels[concurrency] = result
        print(level_line(protocol.label, result), flush=True)


def timed_calls(call, seconds: float, at_least: int, at_most: int | None = None) -> list[float]:
    """Sorted durations of `call()`, repeated for `seconds` (at least `at_least` times, at most `at_most`)."""
    times: list[float] = []
    start = time.perf_counter()
    while (time.perf_counter() - start < seconds or len(times) < at_least) and (
        at_most is None or len(times) < at_most
    ):
        t = time.perf_counter()
        call()
        times.append(time.perf_counter() - t)
    return sorted(times)


def measure_inprocess(model, workload: Workload, budget: Budget, threads: int | None = None) -> Row:
    """`model.predict` on ready frames in this process: the floor every server adds to.

    `threads` limits the native thread pools (OpenMP in histogram gradient boosting) like
    OMP_NUM_THREADS does for a server; None leaves the libraries' default (one per core).
    """
    if threads is not None:
        from threadpoolctl import threadpool_limits

        with threadpool_limits(limits=threads):
            return measure_inprocess(model, workload, budget)
    row = Row("in-process", "-", "mlflow.sklearn.load_model(...).predict on a ready DataFrame")
    for _ in range(20):
        model.predict(workload.frame_one)
    latencies = timed_calls(
        lambda: model.predict(workload.frame_one), budget.inprocess_seconds, at_least=1, at_most=5000
    )
    total = sum(latencies)
    row.levels[1] = LevelResult(
        1,
        len(latencies),
        0,
        round(total, 3),
        len(latencies) / total,
        statistics.median(latencies) * 1000,
        latencies[min(len(latencies) - 1, math.ceil(0.99 * len(latencies)) - 1)] * 1000,
    )
    model.predict(workload.frame_batch)
    times = timed_calls(lambda: model.predict(workload.frame_batch), budget.inprocess_seconds, at_least=5)
    row.batch = LevelResult(
        1,
        len(times),
        0,
        round(sum(times), 3),
        len(times) / sum(times),
        statistics.median(times) * 1000,
        times[-1] * 1000,
        rows_per_s=BATCH_ROWS * len(times) / sum(times),
    )
    print(
        f"\n== in-process: one row p50 {row.levels[1].p50_ms:.2f} ms ({row.levels[1].rps:.0f}/s), "
        f"{BATCH_ROWS} rows {row.batch.rows_per_s:.0f} rows/s",
        flush=True,
    )
    return row


# ---------------------------------------------------------------- report


def table(rows: list[Row]) -> str:
    head = ["system", "protocol"]
    for c in CONCURRENCY:
        head += [f"c{c} req/s", f"c{c} p50 ms", f"c{c} p99 ms"]
    head += ["errors c1/c8/c32", "c1 +ms vs in-proc", f"{BATCH_ROWS}-row rows/s", "pred"]
    lines = [head]
    for row in rows:
        cells = [row.system, row.protocol]
        if row.failure and not row.levels:
            lines.append(cells + [f"failed: {row.failure[:100]}"])
            continue
        for c in CONCURRENCY:
            r = row.levels.get(c)
            cells += ["-", "-", "-"] if r is None else [f"{r.rps:.1f}", f"{r.p50_ms:.2f}", f"{r.p99_ms:.1f}"]
        cells.append("/".join(str(row.levels[c].errors) if c in row.levels else "-" for c in CONCURRENCY))
        cells.append("-" if row.paired_overhead_ms is None else f"{row.paired_overhead_ms:+.2f}")
        cells.append(f"{row.batch.rows_per_s:,.0f}" if row.batch else "-")
        cells.append({True: "ok", False: "DIFF", None: "-"}[row.prediction_ok])
        lines.append(cells)
    widths = [max(len(line[i]) for line in lines if i < len(line) and len(line) == len(head)) for i in range(len(head))]
    out = []
    for line in lines:
        if len(line) != len(head):
            out.append("  ".join(cell.ljust(widths[i]) for i, cell in enumerate(line[:2])) + "  " + line[2])
        else:
            out.append(
                "  ".join(cell.rjust(widths[i]) if i >= 2 else cell.ljust(widths[i]) for i, cell in enumerate(line))
            )
    return "\n".join(out)


def find(rows: list[Row], system: str, protocol: str) -> Row | None:
    for row in rows:
        if row.system == system and row.protocol == protocol and not row.failure:
            return row
    return None


def targets(rows: list[Row], ours_name: str = "ours") -> list[dict]:
    """Each target for one run of our predictor, with the figures it compares and met / not met
    (None when a side was not run). MLServer is compared V2 against V2 (like with like); mlflow
    and the latency targets use ours over V1; the batch target is judged for each request layout
    (V1 row objects, V1 columns, V2)."""
    ours_v1, ours_v2 = find(rows, ours_name, "V1"), find(rows, ours_name, "V2")
    ml_best, mlflow_row = find(rows, "mlserver-best", "V2"), find(rows, "mlflow", "mlflow")
    floors = [r for r in (find(rows, "in-process", "-"), find(rows, "in-process-1t", "-")) if r]
    batch_floor = (
        max(floors, key=lambda r: r.batch.rows_per_s) if floors else None
    )  # the faster: the stricter comparison
    out = []

    def add(name, measured, text="not measured", ok=None):
        out.append(
            {
                "system": ours_name,
                "target": name,
                "detail": text if measured else "not measured",
                "met": ok if measured else None,
            }
        )

    name = "c32 requests/s >= 2x MLServer best"
    if ours_v2 and ml_best and 32 in ours_v2.levels and 32 in ml_best.levels:
        a, b = ours_v2.levels[32].rps, ml_best.levels[32].rps
        add(name, True, f"V2 {a:.1f} / MLServer best {b:.1f} req/s = {a / b:.2f}x", a >= TARGETS["c32_vs_mlserver"] * b)
    else:
        add(name, False)
    name = "c32 requests/s >= 20x mlflow models serve"
    if ours_v1 and mlflow_row and 32 in ours_v1.levels and 32 in mlflow_row.levels:
        a, b = ours_v1.levels[32].rps, mlflow_row.levels[32].rps
        add(
            name,
            True,
            f"V1 {a:.1f} / mlflow {b:.1f} req/s = {a / b if b else math.inf:.1f}x",
            a >= TARGETS["c32_vs_mlflow"] * b,
        )
    else:
        add(name, False)
    name = "c32 p99 <= 150 ms and no errors"
    if ours_v1 and 32 in ours_v1.levels:
        r = ours_v1.levels[32]
        add(
            name,
            True,
            f"V1 p99 {r.p99_ms:.1f} ms, {r.errors} errors",
            r.p99_ms <= TARGETS["c32_p99_ms"] and r.errors == 0,
        )
    else:
        add(name, False)
    name = "c1 p50 within 3 ms of in-process predict"
    if ours_v1 and ours_v1.paired_overhead_ms is not None:
        gap = ours_v1.paired_overhead_ms
        add(
            name,
            True,
            f"V1 p50 {gap:+.2f} ms over in-process predict (measured in neighbouring blocks)",
            gap <= TARGETS["c1_p50_overhead_ms"],
        )
    else:
        add(name, False)
    for label in ("V1", "V1 columns", "V2"):
        row = find(rows, ours_name, label)
        name = f"{BATCH_ROWS}-row requests >= 0.7x in-process rows/s ({label})"
        if row and row.paired_batch_ratio is not None:
            ratio = row.paired_batch_ratio
            apart = ""
            if batch_floor and row.batch:
                a, b = row.batch.rows_per_s, batch_floor.batch.rows_per_s
                apart = f"; measured apart: {a:,.0f} / {batch_floor.system} {b:,.0f} rows/s = {a / b:.2f}x"
            add(
                name,
                True,
                f"{label} {ratio:.2f}x in-process rows/s (measured in neighbouring blocks{apart})",
                ratio >= TARGETS["batch_vs_inprocess"],
            )
        else:
            add(name, False)
    return out


# ---------------------------------------------------------------- main


def default_tracking_uri() -> str:
    return os.environ.get("MLFLOW_TRACKING_URI") or f"sqlite:///{ROOT / '.local' / 'mlflow.db'}"


def resolve_model(tracking_uri: str, scratch: Path):
    """The champion's local directory and the loaded model; exits with how to get one if absent."""
    import mlflow

    from lifecycle.modelling.serialization import UntrustedModelError
    from lifecycle.registry.registered_model import load_registered

    if tracking_uri.startswith("sqlite:///") and not Path(tracking_uri.removeprefix("sqlite:///")).is_file():
        sys.exit(
            f"error: no MLflow registry at {tracking_uri}: run `make run` first "
            f"(it trains and registers {MODEL_NAME} with alias champion), "
            "or set MLFLOW_TRACKING_URI to a registry that has it"
        )
    mlflow.set_tracking_uri(tracking_uri)
    try:
        trusted = load_registered(MODEL_URI, scratch=scratch / "model")
    except UntrustedModelError as exc:
        sys.exit(f"error: cannot load {MODEL_URI} from {tracking_uri}: {exc}\nrun `make run` first to register it")
    return trusted.path, trusted.model


def selected(name: str, family: str, only: set[str] | None) -> bool:
    return only is None or name in only or family in only


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true", help="short levels (a smoke run, figures are rough)")
    p.add_argument(
        "--only",
        default="",
        help="comma-separated: ours, ours-tuned, mlflow, mlserver, mlserver-default, mlserver-best, inprocess",
    )
    p.add_argument("--json", type=Path, help="also write every figure to this file")
    p.add_argument("--tuned-wait-ms", type=float, default=5.0, help="--max-batch-wait-ms of the ours-tuned run")
    p.add_argument("--ready-timeout", type=float, default=240.0)
    args = p.parse_args(argv)
    known = {"ours", "ours-tuned", "mlflow", "mlserver", "mlserver-default", "mlserver-best", "inprocess", "in-process"}
    only = {s.strip() for s in args.only.split(",") if s.strip()} or None
    if only and only - known:
        p.error(f"--only: unknown name(s) {', '.join(sorted(only - known))}; known: {', '.join(sorted(known))}")
    if only and "in-process" in only:
        only.add("inprocess")
    budget = QUICK if args.quick else FULL
    tracking_uri = default_tracking_uri()
    os.environ["MLFLOW_TRACKING_URI"] = tracking_uri

    scratch = Path(tempfile.mkdtemp(prefix="serving-bench-"))
    logs = scratch / "logs"
    logs.mkdir()
    model_dir, model = resolve_model(tracking_uri, scratch)
    workload = build_workload(MODEL_URI)
    expected = {
        "one": [float(v) for v in model.predict(workload.frame_one)],
        "batch": [float(v) for v in model.predict(workload.frame_batch)],
    }
    print(
        f"model    {MODEL_URI} ({tracking_uri})\nrequests one row of {workload.source}; batches of {BATCH_ROWS} rows\n"
        f"budget   per level: {budget.warmup:g} s warm-up, "
        f"then {budget.duration:g} s or {budget.max_requests} requests; "
        f"batches: {budget.batch_duration:g} s or {budget.batch_requests} requests, one after another\n"
        f"machine  {os.cpu_count()} cores, load generator on the same machine\nlogs     {logs}",
        flush=True,
    )

    rows: list[Row] = []
    if selected("inprocess", "inprocess", only):
        rows.append(measure_inprocess(model, workload, budget))
        one_thread = measure_inprocess(model, workload, budget, threads=1)
        one_thread.system, one_thread.describe = "in-process-1t", one_thread.describe + ", native threads limited to 1"
        rows.append(one_thread)
    servers: list[Server] = []
    if selected("ours", "ours", only):
        servers.append(
            ours(
                "ours",
                "python -m serving (defaults: --max-batch-size 64 --max-batch-wait-ms 0)",
                [],
                tracking_uri,
                grpc=True,
            )
        )
    if selected("ours-tuned", "ours", only):
        servers.append(
            ours(
                "ours-tuned",
                f"python -m serving --max-batch-wait-ms {args.tuned_wait_ms:g}, OMP_NUM_THREADS=1",
                ["--max-batch-wait-ms", f"{args.tuned_wait_ms:g}"],
                tracking_uri,
                ONE_THREAD,
            )
        )
    if selected("mlflow", "mlflow", only):
        servers.append(mlflow_serve(tracking_uri))
    want_default, want_best = (
        selected("mlserver-default", "mlserver", only),
        selected("mlserver-best", "mlserver", only),
    )
    if want_default or want_best:
        ensure_mlserver_venv()
        if want_default:
            servers.append(
                mlserver(
                    "mlserver-default",
                    "mlserver 1.7.1 + mlserver-mlflow, default settings",
                    model_dir,
                    scratch,
                    {},
                    {},
                    tracking_uri,
                )
            )
        if want_best:
            servers.append(
                mlserver(
                    "mlserver-best",
                    "adaptive batching (max_batch_size 64, max_batch_time 0.005), parallel_workers 0, debug off, "
                    "OMP_NUM_THREADS=1",
                    model_dir,
                    scratch,
                    {"parallel_workers": 0, "debug": False},
                    {"max_batch_size": 64, "max_batch_time": 0.005},
                    tracking_uri,
                    ONE_THREAD,
                )
            )

    for server in servers:
        rows.extend(measure_server(server, workload, budget, expected, logs, args.ready_timeout, model))

    print("\n" + table(rows))
    checks = []
    for name in dict.fromkeys(r.system for r in rows if r.system.startswith("ours")):
        print()
        for check in targets(rows, name):
            checks.append(check)
            verdict = {True: "met", False: "NOT MET", None: "n/a"}[check["met"]]
            print(f"{verdict:8} {name:11} {check['target']}: {check['detail']}")
    print(
        f"\n{os.cpu_count()} cores; the load generator runs on the same machine and competes with the server for them."
    )
    if args.json:
        args.json.write_text(
            json.dumps(
                {
                    "model_uri": MODEL_URI,
                    "tracking_uri": tracking_uri,
                    "quick": args.quick,
                    "budget": budget.__dict__,
                    "cores": os.cpu_count(),
                    "rows": [r.to_dict() for r in rows],
                    "targets": checks,
                },
                indent=2,
            )
        )
        print(f"wrote {args.json}")
    shutil.rmtree(scratch / "model", ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
