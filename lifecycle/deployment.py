"""Deploying a registered model version to KServe, and proving it answers.

The InferenceService points at the version's own artifacts in S3 (the MLflow download URI) and
carries the version's registered digest as MODEL_SHA256, so KServe serves exactly what was
registered: the step first loads the version through `lifecycle.registered_model` itself (the
checks the predictor will make), and the predictor refuses files with another digest. The service
is created, or patched when it exists, and then waited for by reading it with GET only. The step
acts as the `model-deployer` ServiceAccount, whose token only the deploy task mounts: it may get,
create and patch InferenceServices, and list pods to say why a new one cannot start; nothing else
(no watch, no delete), and no other pipeline step may touch InferenceServices.

Ready alone does not mean the new version is served: in Standard (raw) mode a patch rolls the
Deployment over without ever leaving Ready, because the old pod stays available until the new one
is, and `status.observedGeneration` is the Deployment's counter, not the InferenceService's. So
once Ready, the model's own input example goes to the predictor as a V2 request, and the step waits
until the answer carries the deployed version as `model_version` (the InferenceService sets
MODEL_VERSION on the predictor) with one prediction per row.
"""

from __future__ import annotations

import json
import logging
import math
import os
import time
import urllib.error
import urllib.request
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from lifecycle.registered_model import TrustedModel, load_registered
from lifecycle.serialization import UntrustedModelError
from lifecycle.urls import mask_credentials

log = logging.getLogger(__name__)

DEFAULT_NAMESPACE = "models"
DEFAULT_ALIAS = "champion"
# A model that cannot load never becomes Ready; these say so before the timeout.
TERMINAL_TRANSITIONS = frozenset({"BlockedByFailedLoad", "InvalidSpec"})
# KServe copies a Deployment's Progressing=False into PredictorReady (and so Ready): the rollout has
# stopped trying, and the old pod, if any, keeps serving the old version.
TERMINAL_REASONS = frozenset({"ProgressDeadlineExceeded"})
READY_CONDITIONS = ("Ready", "PredictorReady")
# KServe's model status reads the first pod it lists, and that pod's model server only while the
# service is not Ready: during a rolling update, where the old pod keeps it Ready, a new pod that
# cannot start goes unreported. So the new version's pods are read too. A container
# waiting for one of these reasons needs a change (image, spec, model) to start. A crash loop gets a
# few restarts first, for a dependency that is still coming up.
STUCK_REASONS = frozenset({"ImagePullBackOff", "ErrImagePull", "InvalidImageName", "CreateContainerConfigError", "CreateContainerError"})
CRASH_LOOP_RESTARTS = 3
POD_LABEL = "serving.kserve.io/inferenceservice"  # on every pod KServe makes for the service
# Where the deploy task mounts the `model-deployer-token` Secret (token, ca.crt, namespace).
DEPLOYER_TOKEN_DIR = Path("/var/run/secrets/model-deployer")


class DeploymentError(RuntimeError):
    """The model could not be deployed, did not become ready, or did not answer correctly."""


class SmokeTestError(DeploymentError):
    """The predictor did not answer the smoke request with one prediction per row."""

    def __init__(self, message: str, model_version: str | None = None):
        super().__init__(message)
        self.model_version = model_version  # of the predictor that refused, when its answer says


@dataclass
class Deployment:
    name: str
    namespace: str
    model_uri: str  # models:/NAME/VERSION that is served
    version: str
    storage_uri: str
    action: str  # created | patched
    url: str  # the V2 infer endpoint inside the cluster
    smoke: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


# ---- the registry side -------------------------------------------------------------------------


def resolve_version(client, model_name: str, alias: str | None = None, version: str | None = None) -> str:
    """The version to serve: `version` as given, or the one `alias` points at."""
    from mlflow.exceptions import MlflowException

    if (alias is None) == (version is None):
        raise DeploymentError("give exactly one of alias and version to deploy")
    try:
        if version is not None:
            return str(client.get_model_version(model_name, str(version)).version)
        return str(client.get_model_version_by_alias(model_name, alias).version)
    except MlflowException as exc:
        what = f"version {version}" if version is not None else f"alias {alias!r}"
        raise DeploymentError(f"registered model {model_name!r} has no {what}: {mask_credentials(exc.message)}") from exc


def storage_uri_of(client, model_name: str, version: str) -> str:
    """Where the version's files are (s3://.../models/m-<id>/artifacts), not its models:/ source."""
    return client.get_model_version_download_uri(model_name, version)


def verified_version(client, model_name: str, version: str) -> TrustedModel:
    """The version loaded as the predictor will load it: a version whose files fail a check is
    refused here, before any InferenceService changes."""
    try:
        return load_registered(f"models:/{model_name}/{version}", client=client)
    except UntrustedModelError as exc:
        raise DeploymentError(f"models:/{model_name}/{version} will not be deployed: {exc}") from exc


def input_example_of(trusted: TrustedModel):
    """The input example logged with the model, in the signature's dtypes."""
    example = trusted.meta.load_input_example(str(trusted.path))
    if example is None:
        uri = trusted.version.uri if trusted.version else trusted.path
        raise DeploymentError(f"{uri} was logged without an input example; there is nothing to send as a smoke request")
    return example


# ---- the Kubernetes side -------------------------------------------------------------------------


def deployer_kubeconfig(token_dir: Path, host: str, port: str) -> dict:
    """A kubeconfig that speaks to the in-cluster API server with the token in `token_dir`."""
    return {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "in-cluster", "cluster": {"server": f"https://{host}:{port}", "certificate-authority": str(token_dir / "ca.crt")}}],
        "users": [{"name": "model-deployer", "user": {"token": (token_dir / "token").read_text().strip()}}],
        "contexts": [{"name": "model-deployer", "context": {"cluster": "in-cluster", "user": "model-deployer"}}],
        "current-context": "model-deployer",
    }


def kserve_client(token_dir: Path = DEPLOYER_TOKEN_DIR):
    """In a cluster, a client acting as `model-deployer` with the token the deploy task mounts (the
    pod's own ServiceAccount may not touch InferenceServices); outside one, ~/.kube/config."""
    from kserve import KServeClient

    host, port = os.environ.get("KUBERNETES_SERVICE_HOST"), os.environ.get("KUBERNETES_SERVICE_PORT", "443")
    if not host:
        return KServeClient()
    if not (token_dir / "token").is_file():
        raise DeploymentError(
            f"no model-deployer token at {token_dir}: the deploy step acts as the model-deployer ServiceAccount, "
            "whose token Secret (model-deployer-token) the pipeline mounts there"
        )
    return KServeClient(config_dict=deployer_kubeconfig(token_dir, host, port))


def _api_exception(exc: BaseException):
    """KServeClient wraps the API error in a RuntimeError; the status code is on the original."""
    from kubernetes.client.rest import ApiException

    seen = exc
    while seen is not None:
        if isinstance(seen, ApiException):
            return seen
        seen = seen.__cause__ or seen.__context__
    return None


def _api_message(exc: BaseException) -> str:
    api = _api_exception(exc)
    if api is None:
        return str(exc)
    try:
        body = json.loads(api.body or "{}")
        detail = body.get("message") or api.body
    except (TypeError, ValueError):
        detail = api.body
    return f"HTTP {api.status} {api.reason}: {detail}"


def apply_inference_service(client, isvc) -> tuple[str, dict]:
    """Creates the InferenceService, or patches it when one of that name exists. Returns (action, object)."""
    name, namespace = isvc.metadata.name, isvc.metadata.namespace
    try:
        return "created", client.create(isvc, namespace=namespace)
    except RuntimeError as exc:
        api = _api_exception(exc)
        if api is None or api.status != 409:
            raise DeploymentError(f"creating InferenceService {namespace}/{name} failed: {_api_message(exc)}") from exc
    try:
        return "patched", client.patch(name, isvc, namespace=namespace)
    except RuntimeError as exc:
        raise DeploymentError(f"patching InferenceService {namespace}/{name} failed: {_api_message(exc)}") from exc


def describe_status(status: dict | None) -> str:
    """The controller's own words: every condition that is not True, and the model's last failure."""
    if not status:
        return "no status yet (is the KServe controller running?)"
    parts = []
    for condition in status.get("conditions") or []:
        if str(condition.get("status")).lower() != "true":
            words = ": ".join(w for w in (condition.get("reason"), condition.get("message")) if w)
            parts.append(f"{condition.get('type')}={condition.get('status')}" + (f" ({words})" if words else ""))
    model = status.get("modelStatus") or {}
    failure = model.get("lastFailureInfo") or {}
    if failure:
        parts.append("model: " + ": ".join(str(w) for w in (failure.get("reason"), failure.get("message")) if w))
    elif model.get("transitionStatus") and model.get("transitionStatus") != "UpToDate":
        parts.append(f"model transition {model['transitionStatus']}")
    return "; ".join(parts) or "no condition reported a problem"


def is_ready(status: dict) -> bool:
    """The Ready condition is True; during a rolling update the old pod alone keeps it so."""
    return any(c.get("type") == "Ready" and str(c.get("status")).lower() == "true" for c in status.get("conditions") or [])


def has_failed(status: dict) -> bool:
    """The controller says the service will not get to Ready by waiting: the model failed to load or
    the spec is invalid, or the Deployment exceeded its progress deadline."""
    if (status.get("modelStatus") or {}).get("transitionStatus") in TERMINAL_TRANSITIONS:
        return True
    return any(
        c.get("type") in READY_CONDITIONS and str(c.get("status")).lower() == "false" and c.get("reason") in TERMINAL_REASONS
        for c in status.get("conditions") or []
    )


def stuck_pod(core_api, name: str, namespace: str, version: str) -> str | None:
    """Why a pod of `name` that serves `version` (its MODEL_VERSION) cannot start, in the kubelet's
    words (the container's last exit and its message), or None if none is stuck."""
    from serving.inference_service import MODEL_VERSION_ENV

    for pod in core_api.list_namespaced_pod(namespace, label_selector=f"{POD_LABEL}={name}").items:
        env = [e for c in pod.spec.containers for e in c.env or []]
        if not any(e.name == MODEL_VERSION_ENV and e.value == version for e in env):
            continue
        status = pod.status
        if status is None:
            continue
        for container in (status.init_container_statuses or []) + (status.container_statuses or []):
            waiting = container.state.waiting if container.state else None
            if waiting is None:
                continue
            crash_loop = waiting.reason == "CrashLoopBackOff" and container.restart_count >= CRASH_LOOP_RESTARTS
            if not crash_loop and waiting.reason not in STUCK_REASONS:
                continue
            words = f"pod {pod.metadata.name}: container {container.name} is in {waiting.reason}"
            last = container.last_state.terminated if container.last_state else None
            if crash_loop and last is not None:
                said = (last.message or "").strip()
                words += f" after {container.restart_count} restarts; last exit code {last.exit_code}" + (f" ({last.reason})" if last.reason else "")
                words += f": {said[-500:]}" if said else ""
            elif waiting.message:
                words += f": {waiting.message}"
            return words
    return None


def _who_answered(answer: dict | None) -> str:
    if answer is None:
        return "nothing answered the smoke request"
    if answer.get("model_version") is None:
        return "the predictor answered without a model_version"
    return f"version {answer['model_version']} answered"


def wait_until_serving(
    client, name: str, namespace: str, version: str, base_url: str, example, timeout_seconds: float, poll_seconds: float = 5.0
) -> dict:
    """Reads the InferenceService (GET only) and the pods of `version` until it is Ready and `version`
    answers the smoke request.

    Args:
        client: A `kserve.KServeClient`.
        name: Name of the InferenceService, also the model name in the predictor's URL.
        namespace: Namespace of the InferenceService.
        version: The registered version that must answer, as the predictor reports it in `model_version`.
        base_url: Base URL of the predictor.
        example: The DataFrame to send as the smoke request.
        timeout_seconds: How long to wait for the version to answer.
        poll_seconds: Time between status reads.

    Returns:
        The smoke request's result from `smoke_request`.

    Raises:
        DeploymentError: The controller reports a failure it will not recover from, a pod of
            `version` cannot start, or `version` did not answer in time; the message has the
            controller's status and who answered instead.
        SmokeTestError: The predictor answered with an error or without one prediction per row.
    """
    from kubernetes.client.rest import ApiException
    from urllib3.exceptions import HTTPError

    deadline = time.monotonic() + timeout_seconds
    answer = None
    read_pods = True
    while True:
        try:
            obj = client.get(name, namespace=namespace)
        except RuntimeError as exc:
            raise DeploymentError(f"reading InferenceService {namespace}/{name} failed: {_api_message(exc)}") from exc
        status = obj.get("status") or {}
        # Checked first: past its progress deadline a rollout is still Ready on the old pod.
        if has_failed(status):
            raise DeploymentError(f"InferenceService {namespace}/{name} failed: {describe_status(status)}")
        if is_ready(status):
            # A Service that just became Ready may take a moment to route; not past the deadline.
            retry = min(30.0, max(0.0, deadline - time.monotonic()))
            try:
                answer = smoke_request(base_url, name, example, retry_seconds=retry)
            except SmokeTestError as exc:
                if exc.model_version is None or str(exc.model_version) == version:
                    raise
                # The old version refusing the new one's example (its columns changed): still rolling out.
                answer = {"model_version": exc.model_version}
            if answer["model_version"] is not None and str(answer["model_version"]) == version:
                return answer
            log.info("%s; waiting for version %s to roll out", _who_answered(answer), version)
        if read_pods:
            stuck = None
            try:
                stuck = stuck_pod(client.core_api, name, namespace, version)
            except (ApiException, HTTPError) as exc:  # the pods only explain a failure; the wait goes on without them
                read_pods = getattr(exc, "status", None) != 403
                log.warning("cannot read the pods of %s/%s (%s)%s", namespace, name, _api_message(exc),
                            "" if read_pods else "; a pod that cannot start is reported at the timeout")
            if stuck:
                raise DeploymentError(
                    f"InferenceService {namespace}/{name}: version {version} cannot start: {stuck}; {_who_answered(answer)}; {describe_status(status)}"
                )
        if time.monotonic() + poll_seconds > deadline:
            raise DeploymentError(
                f"InferenceService {namespace}/{name} not serving version {version} after {timeout_seconds:g} s: "
                f"{_who_answered(answer)}; {describe_status(status)}"
            )
        time.sleep(poll_seconds)


# ---- the smoke request -----------------------------------------------------------------------------


def _v2_tensor(name: str, column) -> dict:
    """One named 1-D tensor; JSON null for missing values."""
    import pandas as pd

    kind = column.dtype.kind
    if kind == "b":
        datatype = "BOOL"
    elif kind in "iu" or pd.api.types.is_integer_dtype(column.dtype):
        datatype = "INT64"
    elif kind == "f":
        datatype = "FP64"
    else:
        datatype = "BYTES"
    values = []
    for value in column.tolist():
        if value is None or value is pd.NA or (isinstance(value, float) and math.isnan(value)):
            values.append(None)
        elif datatype == "BYTES":
            values.append(str(value))
        else:
            values.append(value)
    return {"name": str(name), "shape": [len(values)], "datatype": datatype, "data": values}


def v2_request(example) -> dict:
    """Open Inference Protocol body with one tensor per column of a DataFrame."""
    return {"inputs": [_v2_tensor(name, example[name]) for name in example.columns]}


def infer_url(base_url: str, model_name: str) -> str:
    return f"{base_url.rstrip('/')}/v2/models/{model_name}/infer"


def _answered_version(text: str) -> str | None:
    """The `model_version` of a JSON answer (this project's predictor puts it in errors too)."""
    try:
        answer = json.loads(text)
    except ValueError:
        return None
    return answer.get("model_version") if isinstance(answer, dict) else None


def smoke_request(url: str, model_name: str, example, timeout: float = 30.0, retry_seconds: float = 0.0) -> dict:
    """Sends `example` (a DataFrame) to a V2 server at `url` and checks one prediction comes back per row.

    Works against any Open Inference Protocol server. Connection errors are retried for
    `retry_seconds` (a Service that just became Ready may take a moment to route). Returns the rows
    sent, the predictions and the `model_version` the server answered with (None when it sent
    none); raises SmokeTestError with the status and body otherwise.
    """
    endpoint = infer_url(url, model_name)
    body = json.dumps(v2_request(example)).encode()
    rows = len(example)
    deadline = time.monotonic() + retry_seconds
    while True:
        request = urllib.request.Request(endpoint, data=body, method="POST", headers={"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(request, timeout=timeout) as response:
                status, text = response.status, response.read().decode("utf-8", "replace")
            break
        except urllib.error.HTTPError as exc:
            status, text = exc.code, exc.read().decode("utf-8", "replace")
            break
        except (urllib.error.URLError, OSError) as exc:
            if time.monotonic() >= deadline:
                raise SmokeTestError(f"smoke request to {endpoint} failed: {getattr(exc, 'reason', exc)}") from exc
            time.sleep(1.0)
    if status != 200:
        raise SmokeTestError(f"smoke request to {endpoint} answered HTTP {status}: {text[:1000]}", _answered_version(text))
    try:
        answer = json.loads(text)
        outputs = answer["outputs"]
        output = next((o for o in outputs if o.get("name") == "prediction"), outputs[0])
        predictions = output["data"]
    except (ValueError, KeyError, IndexError, TypeError) as exc:
        raise SmokeTestError(f"smoke request to {endpoint} answered HTTP 200 without V2 outputs: {text[:1000]}") from exc
    if len(predictions) != rows:
        raise SmokeTestError(f"smoke request to {endpoint} sent {rows} rows and got {len(predictions)} predictions: {text[:1000]}")
    return {"rows": rows, "output": output.get("name"), "predictions": predictions, "model_version": answer.get("model_version")}


# ---- the whole step --------------------------------------------------------------------------------


def deploy_model(
    model_name: str,
    alias: str | None = DEFAULT_ALIAS,
    version: str | None = None,
    namespace: str = DEFAULT_NAMESPACE,
    timeout_seconds: float = 600,
    poll_seconds: float = 5.0,
    smoke_url: str | None = None,
    client=None,
    mlflow_client=None,
    resources=None,
) -> Deployment:
    """Serves `models:/model_name@alias` (or `/version`) as an InferenceService and smoke-tests it.

    Args:
        model_name: Registered model name; also the InferenceService name.
        alias: Alias of the version to serve (ignored when `version` is given).
        version: A specific version to serve.
        namespace: Namespace of the InferenceService.
        timeout_seconds: How long to wait for the version to answer (Ready, and the rollout done).
        poll_seconds: Time between status reads.
        smoke_url: Base URL of the predictor (default: its cluster Service).
        client: A `kserve.KServeClient` (default: from the pod's ServiceAccount or kubeconfig).
        mlflow_client: An `MlflowClient` (default: from MLFLOW_TRACKING_URI).
        resources: `serving.inference_service.Resources` of the predictor.

    Returns:
        What was deployed, where, and the smoke request's result (answered by the deployed version).
    """
    from mlflow import MlflowClient

    from serving.inference_service import (
        InferenceServiceError,
        Resources,
        build_inference_service,
        check_name,
    )

    mlflow_client = mlflow_client or MlflowClient()
    try:
        check_name(model_name, "registered model name (used as the InferenceService name)")
    except InferenceServiceError as exc:
        raise DeploymentError(str(exc)) from exc
    served = resolve_version(mlflow_client, model_name, alias=None if version is not None else alias, version=version)
    model_uri = f"models:/{model_name}/{served}"
    trusted = verified_version(mlflow_client, model_name, served)
    storage_uri = storage_uri_of(mlflow_client, model_name, served)
    try:
        isvc = build_inference_service(
            model_name, storage_uri, namespace, resources or Resources(), model_version=served, model_sha256=trusted.sha256
        )
    except InferenceServiceError as exc:
        raise DeploymentError(f"{model_uri} cannot be served by KServe: {exc}") from exc
    example = input_example_of(trusted)

    client = client or kserve_client()
    action, _ = apply_inference_service(client, isvc)
    log.info("InferenceService %s/%s %s: version %s from %s", namespace, model_name, action, served, storage_uri)
    base = smoke_url or f"http://{model_name}-predictor.{namespace}.svc.cluster.local"
    smoke = wait_until_serving(client, model_name, namespace, served, base, example, timeout_seconds, poll_seconds)
    return Deployment(model_name, namespace, model_uri, served, storage_uri, action, infer_url(base, model_name), smoke)
