"""The stack's MLflow server requires authentication, as the cluster's does: a request without a
known user and password is refused, the steps' user is not an admin, and a registration without
credentials, or with wrong ones, fails naming the registry and leaves the registry as it was."""

from __future__ import annotations

import base64
import json
import os
import queue
import re
import secrets
import subprocess
import sys
import threading
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from mlflow import MlflowClient

from tests.integration.conftest import assert_aliases_resolve, registry_state
from tests.integration.registering import train_and_register
from tools.run_local import run_training

# Also `pipeline`: one test runs a whole pipeline, which `make test-fast` leaves out.
pytestmark = [pytest.mark.integration, pytest.mark.pipeline]

ROOT = Path(__file__).resolve().parents[2]
EXISTING = "ames-auth"  # registered once with the steps' credentials, then attempted with bad ones
# What MLflow's client and server say when a request carries no valid user and password.
AUTH_ERROR = re.compile(r"\b401\b|not authenticated|unauthori[sz]ed|credentials", re.IGNORECASE)


def http_status(url: str, credentials: tuple[str, str] | None = None, body: dict | None = None) -> int:
    """The status a plain HTTP client gets, with Basic credentials or none."""
    headers = {"Content-Type": "application/json"}
    if credentials:
        headers["Authorization"] = "Basic " + base64.b64encode(":".join(credentials).encode()).decode()
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(url, data=data, headers=headers, method="POST" if data else "GET")
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status
    except urllib.error.HTTPError as exc:
        return exc.code


def register_with(monkeypatch, model_name: str, credentials: tuple[str, str] | None) -> tuple[str, object]:
    """The project's register code, in this process, with the given MLflow credentials (None: none)."""
    if credentials is None:
        monkeypatch.delenv("MLFLOW_TRACKING_USERNAME", raising=False)
        monkeypatch.delenv("MLFLOW_TRACKING_PASSWORD", raising=False)
    else:
        monkeypatch.setenv("MLFLOW_TRACKING_USERNAME", credentials[0])
        monkeypatch.setenv("MLFLOW_TRACKING_PASSWORD", credentials[1])
    start, results = threading.Barrier(1), queue.Queue()
    train_and_register(model_name, 10.0, start, results)
    outcome, _, detail = results.get(timeout=5)
    return outcome, detail


def registry_as_admin(stack, model_name: str) -> dict:
    """Every registered model named like `model_name` (the lock too), with versions and aliases, as the admin
    sees it."""
    with pytest.MonkeyPatch.context() as patch:
        for name, value in stack.admin_environment().items():
            patch.setenv(name, value)
        client = MlflowClient(stack.tracking_uri)
        models = client.search_registered_models(filter_string=f"name LIKE '{model_name}%'")
        return {
            model.name: {
                "aliases": dict(model.aliases),
                "versions": sorted(str(v.version) for v in client.search_model_versions(f"name='{model.name}'")),
            }
            for model in models
        }


def bad_credentials(stack, kind: str) -> tuple[str, str] | None:
    user, _ = stack.mlflow_credentials
    return {
        "none": None,
        "wrong password": (user, secrets.token_urlsafe(24)),
        "unknown user": ("someone-" + secrets.token_hex(4), secrets.token_urlsafe(24)),
    }[kind]


def assert_refusal_names_the_registry(stack, detail: str, tried: tuple[str, str] | None) -> None:
    registry = stack.tracking_uri  # holds no credentials, so it reads the same masked
    lines = [line for line in detail.splitlines() if registry in line and AUTH_ERROR.search(line)]
    assert lines, f"no line names the registry {registry} and the authentication error: {detail!r}"
    for value in [*stack.secrets, *(tried or ())[1:]]:
        assert value not in detail


@pytest.fixture(scope="module")
def registered_once(stack):
    """EXISTING with one version, registered through the same code with the steps' own credentials."""
    with pytest.MonkeyPatch.context() as patch:
        outcome, detail = register_with(patch, EXISTING, stack.mlflow_credentials)
    assert outcome == "registered", detail
    state = registry_as_admin(stack, EXISTING)
    assert state[EXISTING]["versions"] == [detail["version"]]
    return state


def test_server_refuses_requests_without_valid_credentials(stack):
    search = f"{stack.tracking_uri}/api/2.0/mlflow/registered-models/search"
    user, password = stack.mlflow_credentials
    assert http_status(search, stack.mlflow_credentials) == 200
    assert http_status(search) == 401
    assert http_status(search, (user, password + "x")) == 401
    assert http_status(search, ("someone", password)) == 401
    # Health stays open: it is how the stack and the register step tell "down" from "refused".
    assert http_status(f"{stack.tracking_uri}/health") == 200


def test_steps_user_is_not_an_admin(stack):
    create_user = f"{stack.tracking_uri}/api/2.0/mlflow/users/create"
    body = {"username": "intruder-" + secrets.token_hex(4), "password": secrets.token_urlsafe(16)}
    assert http_status(create_user, stack.mlflow_credentials, body) == 403
    assert http_status(create_user, None, body) == 401
    # A model the steps' user did not create: it may read it, not move its aliases.
    name = "auth-admins-model"
    create = {"name": name}
    assert (
        http_status(f"{stack.tracking_uri}/api/2.0/mlflow/registered-models/create", stack.admin_credentials, create)
        == 200
    )
    alias = {"name": name, "alias": "champion", "version": "1"}
    assert (
        http_status(f"{stack.tracking_uri}/api/2.0/mlflow/registered-models/get?name={name}", stack.mlflow_credentials)
        == 200
    )
    set_alias = f"{stack.tracking_uri}/api/2.0/mlflow/registered-models/alias"
    assert http_status(set_alias, stack.mlflow_credentials, alias) == 403


@pytest.mark.parametrize("kind", ["none", "wrong password", "unknown user"])
def test_registering_a_new_model_with_bad_credentials_fails_naming_the_registry(stack, monkeypatch, kind):
    name = f"ames-auth-new-{kind.replace(' ', '-')}"
    tried = bad_credentials(stack, kind)
    outcome, detail = register_with(monkeypatch, name, tried)
    assert outcome == "failed", detail
    assert registry_as_admin(stack, name) == {}
    assert_refusal_names_the_registry(stack, detail, tried)


@pytest.mark.parametrize("kind", ["none", "wrong password", "unknown user"])
def test_registering_over_a_champion_with_bad_credentials_moves_nothing(stack, registered_once, monkeypatch, kind):
    tried = bad_credentials(stack, kind)
    outcome, detail = register_with(monkeypatch, EXISTING, tried)
    assert outcome == "failed", detail
    assert registry_as_admin(stack, EXISTING) == registered_once
    assert_refusal_names_the_registry(stack, detail, tried)


def test_register_step_without_credentials_fails_and_registers_nothing(stack, trained, quick_ames, capfd, monkeypatch):
    """The whole training pipeline, its steps given no MLflow credentials, as with the Secret missing."""
    from tests.integration.conftest import MODEL

    before = registry_state(MODEL)
    champion = assert_aliases_resolve(MODEL)["champion"]
    monkeypatch.delenv("MLFLOW_TRACKING_USERNAME")
    monkeypatch.delenv("MLFLOW_TRACKING_PASSWORD")
    with pytest.raises(RuntimeError, match="register-model"):
        run_training(quick_ames, stack.workdir, data_uri=trained.data_uri, model_name=MODEL)
    captured = capfd.readouterr()
    monkeypatch.setenv("MLFLOW_TRACKING_USERNAME", stack.mlflow_credentials[0])
    monkeypatch.setenv("MLFLOW_TRACKING_PASSWORD", stack.mlflow_credentials[1])
    assert registry_state(MODEL) == before
    assert assert_aliases_resolve(MODEL)["champion"] == champion
    assert_refusal_names_the_registry(stack, captured.out + captured.err, None)


def run_registry_check(stack, credentials: tuple[str, str] | None) -> subprocess.CompletedProcess:
    """scripts/e2e-registry.py against the stack, as the e2e job runs it, with the given credentials."""
    from tests.integration.conftest import MODEL

    env = {k: v for k, v in os.environ.items() if k not in ("MLFLOW_TRACKING_USERNAME", "MLFLOW_TRACKING_PASSWORD")}
    if credentials:
        env.update(MLFLOW_TRACKING_USERNAME=credentials[0], MLFLOW_TRACKING_PASSWORD=credentials[1])
    return subprocess.run(
        [
            sys.executable,
            str(ROOT / "scripts" / "e2e-registry.py"),
            "--tracking-uri",
            stack.tracking_uri,
            "--model",
            MODEL,
        ],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def test_e2e_registry_check_reads_with_credentials_and_names_a_refusal(stack, trained):
    allowed = run_registry_check(stack, stack.mlflow_credentials)
    assert allowed.returncode == 0, allowed.stderr
    assert f"v{trained.registration['version']} (@champion)" in allowed.stdout
    refused = run_registry_check(stack, None)
    assert refused.returncode == 1
    assert f"error: the registry at {stack.tracking_uri} refused the request (UNAUTHENTICATED)" in refused.stderr
    assert "is not in the registry" not in refused.stderr
