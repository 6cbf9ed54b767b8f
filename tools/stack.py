"""The cluster's shape on one machine: an S3 API server and an MLflow tracking server on loopback.

In the cluster, pipeline steps read data from an S3 store, log to an MLflow server whose artifacts
live in that store, and KServe downloads the registered model from it. `LoopbackStack` runs the
same shape here, so the network paths are real:

- S3: moto's `ThreadedMotoServer` (MinIO and SeaweedFS servers cannot be installed here), with IAM
  authentication switched on, so only the stack's own access key is accepted and a wrong key is
  refused as it would be by the cluster's store.
- MLflow: a real `mlflow server` process with a SQLite backend and
  `--no-serve-artifacts --default-artifact-root s3://BUCKET/mlflow`, so registered versions have
  `s3://` locations that KServe's storage initializer can read. It runs MLflow's basic-auth app,
  as in the cluster: a request without a known user and password is refused (401). The admin
  and the steps' own non-admin user get passwords made for each stack.

Clients are configured only through the variables the cluster sets: `MLFLOW_TRACKING_URI`,
`MLFLOW_TRACKING_USERNAME`, `MLFLOW_TRACKING_PASSWORD`, `MLFLOW_S3_ENDPOINT_URL`,
`AWS_ENDPOINT_URL`, `AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`, `AWS_DEFAULT_REGION` (see
`LoopbackStack.environment`).

    python -m tools.stack up      # start both, write their environment to a file, wait for Ctrl-C
"""

from __future__ import annotations

import base64
import contextlib
import json
import logging
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

log = logging.getLogger(__name__)

HOST = "127.0.0.1"
ARTIFACT_BUCKET = "mlflow"
DATA_BUCKET = "datasets"
REGION = "us-east-1"
# Everything a step allowed to use S3 may do; the point of IAM here is the credential check.
S3_POLICY = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}]}
ADMIN_USER = "admin"
# The steps' MLflow user: not an admin. MLflow gives a user MANAGE on what it creates (experiments,
# registered models, so the promotion lock too); on anything else it has the default permission.
PIPELINE_USER = "pipelines"
# MLflow's own default. NO_PERMISSIONS would also refuse reads, but then a look-up of a model that
# does not exist yet is answered 403 instead of 404, and "not there yet" could no longer be told
# apart from "refused".
DEFAULT_PERMISSION = "READ"
# Variables the server must not inherit from the shell that starts it: its admin comes from its
# own config file, and it is no client.
SERVER_ENV_DROPPED = (
    "MLFLOW_TRACKING_URI",
    "MLFLOW_TRACKING_USERNAME",
    "MLFLOW_TRACKING_PASSWORD",
    "MLFLOW_TRACKING_TOKEN",
    "MLFLOW_AUTH_ADMIN_USERNAME",
    "MLFLOW_AUTH_ADMIN_PASSWORD",
)


class StackError(RuntimeError):
    """A part of the stack did not start or stop; the message names it and where its log is."""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return sock.getsockname()[1]


def basic_auth(username: str, password: str) -> str:
    """An HTTP Basic Authorization header value."""
    return "Basic " + base64.b64encode(f"{username}:{password}".encode()).decode()


def _http_ok(url: str, timeout: float = 2.0) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            return response.status == 200
    except (OSError, urllib.error.URLError):
        return False


class S3Server:
    """moto's S3 API in a thread of this process, requiring one IAM user's credentials.

    moto keeps its data in this process, so stopping and starting again on the same port (an
    outage) keeps buckets, objects and the user.
    """

    def __init__(self, port: int | None = None):
        self.port = port or free_port()
        self._server = None
        self.access_key: str | None = None
        self.secret_key: str | None = None

    @property
    def endpoint(self) -> str:
        return f"http://{HOST}:{self.port}"

    @property
    def running(self) -> bool:
        return self._server is not None

    def start(self) -> None:
        from moto.server import ThreadedMotoServer

        # moto logs every request through werkzeug; the stack's users want the pipeline's output.
        logging.getLogger("werkzeug").setLevel(logging.WARNING)
        self._server = ThreadedMotoServer(ip_address=HOST, port=self.port, verbose=False)
        self._server.start()
        if self.access_key is None:
            self._create_user()
        self._require_authentication(True)

    def stop(self) -> None:
        if self._server is None:
            return
        self._require_authentication(False)
        self._server.stop()
        # ThreadedMotoServer.stop() leaves the socket open; close it so the port can be reused.
        self._server._server.server_close()
        self._server = None

    def _create_user(self) -> None:
        import boto3

        iam = boto3.client(
            "iam",
            endpoint_url=self.endpoint,
            region_name=REGION,
            aws_access_key_id="bootstrap",
            aws_secret_access_key="bootstrap",
        )
        # moto's IAM is shared by every stack in this process: one user per stack.
        user = f"pipelines-{self.port}"
        iam.create_user(UserName=user)
        iam.put_user_policy(UserName=user, PolicyName="s3", PolicyDocument=json.dumps(S3_POLICY))
        key = iam.create_access_key(UserName=user)["AccessKey"]
        self.access_key, self.secret_key = key["AccessKeyId"], key["SecretAccessKey"]

    def _require_authentication(self, required: bool) -> None:
        # moto's switch is process-wide: 0 checks every request from now on, inf checks none.
        request = urllib.request.Request(
            f"{self.endpoint}/moto-api/reset-auth",
            data=b"0" if required else b"inf",
            method="POST",
            headers={"Content-Type": "text/plain"},
        )
        with urllib.request.urlopen(request, timeout=10):
            pass

    def make_buckets(self, *names: str) -> None:
        from minio import Minio

        client = Minio(
            f"{HOST}:{self.port}", access_key=self.access_key, secret_key=self.secret_key, secure=False, region=REGION
        )
        for name in names:
            if not client.bucket_exists(name):
                client.make_bucket(name)


class TrackingServer:
    """`mlflow server` as a child process: SQLite registry, artifacts in S3 (not proxied), basic auth.

    The admin's password is made here and written only to the auth config file (owner-only); the
    users database sits beside the registry, so a restart keeps the users.
    """

    def __init__(
        self, workdir: Path, artifact_root: str, environment: dict[str, str], port: int | None = None, workers: int = 1
    ):
        self.workdir = workdir
        self.artifact_root = artifact_root
        self.environment = environment
        self.port = port or free_port()
        self.workers = workers
        self.process: subprocess.Popen | None = None
        self.admin: tuple[str, str] = (ADMIN_USER, secrets.token_urlsafe(24))
        # Signs the auth app's sign-up form (CSRF); the same key across restarts.
        self._flask_secret_key = secrets.token_urlsafe(32)

    @property
    def uri(self) -> str:
        return f"http://{HOST}:{self.port}"

    @property
    def database(self) -> Path:
        return self.workdir / "mlflow.db"

    @property
    def log_path(self) -> Path:
        return self.workdir / "mlflow-server.log"

    @property
    def auth_config(self) -> Path:
        return self.workdir / "basic_auth.ini"

    @property
    def auth_database(self) -> Path:
        return self.workdir / "basic_auth.db"

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def command(self) -> list[str]:
        return [
            sys.executable,
            "-m",
            "mlflow",
            "server",
            "--app-name",
            "basic-auth",
            "--host",
            HOST,
            "--port",
            str(self.port),
            "--workers",
            str(self.workers),
            "--backend-store-uri",
            f"sqlite:///{self.database}",
            "--no-serve-artifacts",
            "--default-artifact-root",
            self.artifact_root,
        ]

    def write_auth_config(self) -> None:
        """MLflow's auth settings; the admin password is used only when the users database is new."""
        admin, password = self.admin
        text = (
            "[mlflow]\n"
            f"default_permission = {DEFAULT_PERMISSION}\n"
            f"database_uri = sqlite:///{self.auth_database}\n"
            f"admin_username = {admin}\n"
            f"admin_password = {password}\n"
            "authorization_function = mlflow.server.auth:authenticate_request_basic_auth\n"
        )
        self.auth_config.touch(mode=0o600)
        self.auth_config.chmod(0o600)
        self.auth_config.write_text(text)

    def server_environment(self) -> dict[str, str]:
        env = {name: value for name, value in os.environ.items() if name not in SERVER_ENV_DROPPED}
        return {
            **env,
            **self.environment,
            "MLFLOW_AUTH_CONFIG_PATH": str(self.auth_config),
            "MLFLOW_FLASK_SERVER_SECRET_KEY": self._flask_secret_key,
        }

    def create_user(self, username: str, password: str, timeout: float = 30.0) -> None:
        """A non-admin user, created by the admin through MLflow's auth REST API."""
        request = urllib.request.Request(
            f"{self.uri}/api/2.0/mlflow/users/create",
            method="POST",
            data=json.dumps({"username": username, "password": password}).encode(),
            headers={"Content-Type": "application/json", "Authorization": basic_auth(*self.admin)},
        )
        try:
            with urllib.request.urlopen(request, timeout=timeout):
                pass
        except urllib.error.HTTPError as exc:
            raise StackError(
                f"mlflow server at {self.uri} refused to create user {username!r}: HTTP {exc.code}; see {self.log_path}"
            ) from None

    def start(self, timeout: float = 90.0) -> None:
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.write_auth_config()
        env = self.server_environment()
        with open(self.log_path, "ab") as log_file:
            # Its own session, so stopping it also stops the uvicorn workers it starts.
            self.process = subprocess.Popen(
                self.command(),
                cwd=self.workdir,
                env=env,
                stdout=log_file,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )
        deadline = time.monotonic() + timeout
        while not _http_ok(f"{self.uri}/health"):
            if self.process.poll() is not None:
                raise StackError(
                    f"mlflow server exited with code {self.process.returncode} before it was healthy; see "
                    f"{self.log_path}"
                )
            if time.monotonic() > deadline:
                self.stop()
                raise StackError(f"mlflow server at {self.uri} not healthy after {timeout:.0f} s; see {self.log_path}")
            time.sleep(0.3)

    def stop(self, timeout: float = 20.0) -> None:
        if self.process is None:
            return
        if self.process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()
        # Workers that outlived the parent would keep the port.
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGKILL)
        self.process = None


class PredictorProcess:
    """The project's KServe predictor (`python -m serving`) on a model folder, as a local process.

    In the cluster the storage initializer copies the version's artifacts to /mnt/models and the
    predictor serves that folder; here the folder is wherever `kserve_storage.Storage.download`
    put them.
    """

    def __init__(
        self,
        model_uri: str | Path,
        model_name: str,
        log_path: Path,
        port: int | None = None,
        args: tuple[str, ...] = (),
        model_sha256: str | None = None,
    ):
        self.model_uri = str(model_uri)  # a model folder, or models:/NAME@ALIAS resolved through MLflow
        self.model_name = model_name
        self.log_path = Path(log_path)
        self.port = port or free_port()
        self.grpc_port = free_port()  # the Open Inference Protocol's gRPC service
        self.args = tuple(args)  # more `python -m serving` options
        if model_sha256:  # a folder is served only with the digest its version recorded (its model_sha256 tag)
            self.args += ("--model-sha256", model_sha256)
        self.process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self.port}"

    @property
    def predict_url(self) -> str:
        return f"{self.url}/v1/models/{self.model_name}:predict"

    def start(self, timeout: float = 120.0) -> None:
        """Returns once the server reports ready; raises StackError with its last words if it exits."""
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        command = [
            sys.executable,
            "-m",
            "serving",
            "--model-uri",
            self.model_uri,
            "--model-name",
            self.model_name,
            "--port",
            str(self.port),
            "--grpc-port",
            str(self.grpc_port),
            *self.args,
        ]
        with open(self.log_path, "ab") as log_file:
            self.process = subprocess.Popen(
                command, stdout=log_file, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True
            )
        deadline = time.monotonic() + timeout
        while not _http_ok(f"{self.url}/v2/health/ready"):
            if self.process.poll() is not None:
                code = self.process.returncode
                self.process = None
                raise StackError(f"predictor exited with code {code} before it was ready: {self.last_error()}")
            if time.monotonic() > deadline:
                self.stop()
                raise StackError(f"predictor on {self.url} not ready after {timeout:.0f} s; see {self.log_path}")
            time.sleep(0.3)

    def last_error(self) -> str:
        lines = [line for line in self.log_path.read_text(errors="replace").splitlines() if line.strip()]
        errors = [line for line in lines if line.startswith("error:")]
        return (errors or lines or [f"no output; see {self.log_path}"])[-1]

    def predict(self, records: list[dict]) -> list:
        request = urllib.request.Request(
            self.predict_url,
            data=json.dumps({"instances": records}).encode(),
            method="POST",
            headers={"Content-Type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=60) as response:
            return json.loads(response.read())["predictions"]

    def stop(self, timeout: float = 20.0) -> None:
        if self.process is None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGTERM)
        try:
            self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()
        self.process = None

    def __enter__(self) -> PredictorProcess:
        self.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop()


class LoopbackStack:
    """S3 store + MLflow tracking server on loopback ports, torn down by `stop()` (or `with`).

    `workdir` holds the registry database, the server log and the pipeline root; it is left in
    place after `stop()` for inspection.
    """

    def __init__(self, workdir: Path, artifact_bucket: str = ARTIFACT_BUCKET, data_bucket: str = DATA_BUCKET):
        self.workdir = Path(workdir).resolve()
        self.artifact_bucket = artifact_bucket
        self.data_bucket = data_bucket
        self.s3 = S3Server()
        self.tracking: TrackingServer | None = None
        self.pipeline_user: tuple[str, str] = (PIPELINE_USER, secrets.token_urlsafe(24))

    @property
    def tracking_uri(self) -> str:
        return self.tracking.uri

    @property
    def s3_endpoint(self) -> str:
        return self.s3.endpoint

    @property
    def artifact_root(self) -> str:
        return f"s3://{self.artifact_bucket}/mlflow"

    @property
    def credentials(self) -> tuple[str, str]:
        """The access key id and secret key the stack's S3 accepts (for secret-leak checks)."""
        return self.s3.access_key, self.s3.secret_key

    @property
    def mlflow_credentials(self) -> tuple[str, str]:
        """The steps' MLflow user and password (not an admin)."""
        return self.pipeline_user

    @property
    def admin_credentials(self) -> tuple[str, str]:
        """The MLflow admin: for checks from outside the steps, never given to them."""
        return self.tracking.admin

    @property
    def secrets(self) -> list[str]:
        """Every secret value the stack made, for checks that none of them leaks."""
        return [*self.credentials, self.pipeline_user[1], self.tracking.admin[1]]

    def s3_environment(self) -> dict[str, str]:
        return {
            "AWS_ENDPOINT_URL": self.s3.endpoint,
            "MLFLOW_S3_ENDPOINT_URL": self.s3.endpoint,
            "AWS_ACCESS_KEY_ID": self.s3.access_key,
            "AWS_SECRET_ACCESS_KEY": self.s3.secret_key,
            "AWS_DEFAULT_REGION": REGION,
        }

    def environment(self) -> dict[str, str]:
        """What a step (or a user's shell) needs to use the stack, as the cluster would set it."""
        username, password = self.pipeline_user
        return {
            "MLFLOW_TRACKING_URI": self.tracking.uri,
            "MLFLOW_TRACKING_USERNAME": username,
            "MLFLOW_TRACKING_PASSWORD": password,
            **self.s3_environment(),
        }

    def admin_environment(self) -> dict[str, str]:
        """The environment with the MLflow admin's credentials instead of the steps' user's."""
        username, password = self.admin_credentials
        return {**self.environment(), "MLFLOW_TRACKING_USERNAME": username, "MLFLOW_TRACKING_PASSWORD": password}

    def start(self) -> LoopbackStack:
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.s3.start()
        try:
            self.s3.make_buckets(self.artifact_bucket, self.data_bucket)
            self.tracking = TrackingServer(self.workdir / "tracking", self.artifact_root, self.s3_environment())
            self.tracking.start()
            self.tracking.create_user(*self.pipeline_user)
        except BaseException:
            self.stop()
            raise
        log.info("stack up: MLflow %s, S3 %s", self.tracking.uri, self.s3.endpoint)
        return self

    def stop(self) -> None:
        if self.tracking is not None:
            self.tracking.stop()
        self.s3.stop()

    def restart_tracking(self) -> None:
        """Stops the MLflow server and starts it again on the same port, on the same database."""
        self.tracking.stop()
        self.tracking.start()

    @contextlib.contextmanager
    def tracking_down(self) -> Iterator[str]:
        """The MLflow server stopped for the duration (its URI unanswered), then back."""
        self.tracking.stop()
        try:
            yield self.tracking.uri
        finally:
            self.tracking.start()

    @contextlib.contextmanager
    def s3_down(self) -> Iterator[str]:
        """The S3 endpoint stopped for the duration (connections refused), then back with its data."""
        self.s3.stop()
        try:
            yield self.s3.endpoint
        finally:
            self.s3.start()

    def write_env_file(self) -> Path:
        """The environment as a shell file only its owner can read (it holds the credentials)."""
        path = self.workdir / "env"
        path.touch(mode=0o600)
        path.chmod(0o600)
        path.write_text("".join(f"{name}={value}\n" for name, value in self.environment().items()))
        return path

    def apply_environment(self) -> None:
        os.environ.update(self.environment())

    def __enter__(self) -> LoopbackStack:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


def main(argv: list[str] | None = None) -> int:
    import argparse

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("command", choices=["up"], help="up: start the stack and keep it running until Ctrl-C")
    parser.add_argument(
        "--workdir", default=".local/stack", help="registry database, server log, env file (default .local/stack)"
    )
    args = parser.parse_args(argv)
    workdir = Path(args.workdir)
    if workdir.exists():
        shutil.rmtree(workdir)  # S3 lives in memory: a registry kept from last time would point at nothing
    stack = LoopbackStack(workdir)
    with stack:
        env_file = stack.write_env_file()
        print(f"stack up: MLflow {stack.tracking_uri}, S3 {stack.s3_endpoint}")
        print(f"use it from another shell with: set -a; . {env_file}; set +a")
        print(f"MLflow UI login: {stack.pipeline_user[0]}, password MLFLOW_TRACKING_PASSWORD in {env_file}")
        print(f"server log {stack.tracking.log_path}; Ctrl-C stops both", flush=True)
        stopping = []
        signal.signal(signal.SIGTERM, lambda *_: stopping.append(True))
        try:
            while not stopping:
                if not stack.tracking.running:
                    print(f"mlflow server exited; see {stack.tracking.log_path}", file=sys.stderr)
                    return 1
                time.sleep(1)
        except KeyboardInterrupt:
            pass
        print("stopping the stack", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
