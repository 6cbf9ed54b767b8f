"""A real `mlflow server` on loopback, and a proxy in front of it that fails one chosen call.

The proxy forwards every request, counts the REST calls a registration makes (not the promotion
lock's heartbeats, whose timing varies), and for the Nth counted call answers 403 or 503 without
forwarding, or forwards it and then hangs past the client's timeout (the call took effect, the
client never hears so). It logs every alias set or delete that reached the server.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import os
import re
import subprocess
import sys
import threading
import time
import urllib.parse
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

from tests.loopback import LoopbackServer, QuietHandler
from tools.stack import free_port

ALIAS_PATH = "/api/2.0/mlflow/registered-models/alias"


@dataclass
class Call:
    method: str
    endpoint: str
    name: str
    alias: str = ""
    version: str = ""

    @property
    def kind(self) -> str:
        lock = " (lock)" if ".promotion-lock" in self.name else ""
        alias = f" {self.alias}" if self.alias else ""
        return f"{self.method} {self.endpoint}{alias}{lock}"


@dataclass
class Fault:
    index: int  # of the counted call, from 1
    kind: str  # "403", "503" or "timeout"


@dataclass
class Proxy:
    upstream: str
    hang_seconds: float = 4.0
    calls: list[Call] = field(default_factory=list)
    alias_moves: list[Call] = field(default_factory=list)
    fault: Fault | None = None
    faulted: Call | None = None
    lock: threading.Lock = field(default_factory=threading.Lock)

    def reset(self, fault: Fault | None = None) -> None:
        with self.lock:
            self.calls, self.alias_moves, self.fault, self.faulted = [], [], fault, None


def _describe(method: str, path: str, body: bytes) -> Call:
    url = urllib.parse.urlsplit(path)
    fields: dict = {k: v[0] for k, v in urllib.parse.parse_qs(url.query).items()}
    if body:
        with contextlib.suppress(ValueError):
            fields.update(json.loads(body))
    endpoint = re.sub(r"/m-[0-9a-f]+", "/m-<id>", url.path.removeprefix("/api/2.0/mlflow/"))
    return Call(
        method, endpoint, str(fields.get("name", "")), str(fields.get("alias", "")), str(fields.get("version", ""))
    )


def handler_for(proxy: Proxy):
    upstream = urllib.parse.urlsplit(proxy.upstream)

    class Handler(QuietHandler):
        protocol_version = "HTTP/1.1"

        def handle_any(self):
            body = self.body()
            call = _describe(self.command, self.path, body)
            counted = self.path.startswith("/api/") and not (
                call.endpoint == "registered-models/update" and "promotion-lock" in call.name
            )
            fault = None
            with proxy.lock:
                if counted:
                    proxy.calls.append(call)
                    if proxy.fault and proxy.fault.index == len(proxy.calls):
                        fault, proxy.faulted = proxy.fault.kind, call
            if fault in ("403", "503"):
                self.answer(int(fault), b"refused by the registry's proxy", "text/plain")
                return
            status, headers, answer = self.forward(body)
            if self.path.startswith(ALIAS_PATH) and self.command in ("POST", "DELETE") and status == 200:
                with proxy.lock:
                    proxy.alias_moves.append(call)
            if fault == "timeout":
                time.sleep(proxy.hang_seconds)
                self.close_connection = True
                return
            self.answer(status, answer, headers.get("Content-Type", "application/json"))

        def forward(self, body: bytes):
            connection = http.client.HTTPConnection(upstream.hostname, upstream.port, timeout=60)
            headers = {
                k: v for k, v in self.headers.items() if k.lower() not in ("host", "connection", "content-length")
            }
            headers["Host"] = upstream.netloc
            connection.request(self.command, self.path, body=body or None, headers=headers)
            response = connection.getresponse()
            answer = response.read()
            connection.close()
            return response.status, dict(response.getheaders()), answer

        def answer(self, status: int, body: bytes, content_type: str) -> None:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        do_GET = do_POST = do_PATCH = do_DELETE = do_PUT = handle_any

    return Handler


class MlflowServer:
    """`mlflow server` as a child process: SQLite registry, artifacts in a local folder, not proxied."""

    def __init__(self, workdir: Path):
        self.workdir = workdir
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.process: subprocess.Popen | None = None

    def __enter__(self):
        mlflow = Path(sys.executable).with_name("mlflow")
        log = open(self.workdir / "mlflow-server.log", "wb")
        self.process = subprocess.Popen(
            [
                str(mlflow),
                "server",
                "--backend-store-uri",
                f"sqlite:///{self.workdir / 'mlflow.db'}",
                "--default-artifact-root",
                str(self.workdir / "artifacts"),
                "--no-serve-artifacts",
                "--host",
                "127.0.0.1",
                "--port",
                str(self.port),
                "--workers",
                "1",
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            env={**os.environ, "PATH": f"{mlflow.parent}:{os.environ['PATH']}"},
        )
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"mlflow server exited: {(self.workdir / 'mlflow-server.log').read_text()[-2000:]}")
            try:
                with urllib.request.urlopen(f"{self.url}/health", timeout=2):
                    return self
            except OSError:
                time.sleep(0.3)
        self.__exit__()
        raise RuntimeError("mlflow server did not answer within 120 s")

    def __exit__(self, *exc):
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


class FaultyRegistry:
    """The server and the proxy in front of it; `url` is what clients use."""

    def __init__(self, workdir: Path):
        self.server = MlflowServer(workdir)

    def __enter__(self):
        self.server.__enter__()
        self.proxy = Proxy(self.server.url)
        self.loopback = LoopbackServer(handler_for(self.proxy)).__enter__()
        self.url = self.loopback.url
        return self

    def __exit__(self, *exc):
        self.loopback.close()
        self.server.__exit__()


def trained_models(alphas):
    """Ames, the project's featurizer + ridge(alpha) per alpha, fitted; with config, train, test."""
    import pandas as pd
    from sklearn.pipeline import Pipeline

    from lifecycle.dataset.config import load_config
    from lifecycle.dataset.process import process_frame, split_frame
    from lifecycle.modelling.estimators import build_estimator, expand_search_space
    from lifecycle.modelling.features import build_featurizer, features_and_target
    from tests.conftest import AMES_CONFIG, AMES_DATA, quick

    config = quick(
        load_config(AMES_CONFIG), cv_folds=3, search_space=[{"estimator": "ridge", "params": {"alpha": list(alphas)}}]
    )
    train, test = split_frame(process_frame(pd.read_csv(AMES_DATA), config), config)
    X, y = features_and_target(train, config)
    featurizer = build_featurizer(config).fit(X)
    models = [
        Pipeline([("features", featurizer), ("model", build_estimator(c, config))]).fit(X, y)
        for c in expand_search_space(config)
    ]
    return config, train, test, models


def register(model, config, train, test, model_name: str, **lineage):
    from lifecycle.modelling.evaluation import holdout_metrics
    from lifecycle.registry.registration import register_model

    return register_model(
        model,
        train,
        test,
        config,
        holdout_metrics(model, test, config),
        model_name,
        0.0,
        lineage={"git_commit": "abc123", **lineage},
        artifacts={},
        params={"candidate": "ridge"},
    )


def register_in_process(
    uri: str,
    model_name: str,
    alpha: float,
    slow: float,
    stale: float,
    heartbeat: float,
    start,
    inside,
    arrived,
    others: int,
    results,
) -> None:
    """A registration in a process of its own, recording when it holds the promotion lock.

    With `slow`, it sets `inside` once it holds the lock, waits there until the `others` have
    come to the lock (`arrived`), then works `slow` seconds more (past the stale limit). The
    others start only once it is inside, so they all wait on its lock.
    """
    os.environ["MLFLOW_TRACKING_URI"] = uri
    os.environ["OMP_NUM_THREADS"] = "1"
    from lifecycle.registry import lock as promotion_lock
    from lifecycle.registry import registration as registry

    promotion_lock.LOCK_STALE_SECONDS, promotion_lock.LOCK_HEARTBEAT_SECONDS = stale, heartbeat
    held: list[list[float]] = []
    acquire, release, move = (
        promotion_lock.PromotionLock.acquire,
        promotion_lock.PromotionLock.release,
        registry._move_aliases,
    )

    def entering(self):
        if not slow and not held:
            arrived.release()
        acquire(self)
        held.append([time.time(), None])

    def leaving(self):
        if held and held[-1][1] is None:
            held[-1][1] = time.time()
        return release(self)

    def working_long(*args):
        if slow:
            inside.set()
            for _ in range(others):
                arrived.acquire(timeout=300)
            time.sleep(slow)
        return move(*args)

    promotion_lock.PromotionLock.acquire, promotion_lock.PromotionLock.release = entering, leaving
    registry._move_aliases = working_long
    config, train, test, (model,) = trained_models([alpha])
    start.wait(timeout=300)
    if not slow:
        inside.wait(timeout=300)
    try:
        registration = register(model, config, train, test, model_name, candidate_alpha=str(alpha))
        results.put(("registered", alpha, registration.to_dict(), held))
    except Exception as exc:
        results.put(("failed", alpha, str(exc), held))
