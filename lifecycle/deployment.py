"""Deploying a registered model version to KServe, and proving it answers.

The InferenceService points at the version's own artifacts in S3 (the MLflow download URI), so
KServe serves exactly what was registered. It is created, or patched when it exists, and then
waited for by reading it with GET only: the pipeline's ServiceAccount may get, create and patch
InferenceServices and nothing else (no list, no watch). Once Ready, the model's own input example
goes to the predictor as a V2 request and must come back with one prediction per row.
"""

from __future__ import annotations

import json
import logging
import math
import time
import urllib.error
import urllib.request
from dataclasses import asdict, dataclass, field
from typing import Any

log = logging.getLogger(__name__)

DEFAULT_NAMESPACE = "models"
DEFAULT_ALIAS = "champion"
# A model that cannot load never becomes Ready; these say so before the timeout.
TERMINAL_TRANSITIONS = frozenset({"BlockedByFailedLoad", "InvalidSpec"})


class DeploymentError(RuntimeError):
    """The model could not be deployed, did not become ready, or did not answer correctly."""


class SmokeTestError(DeploymentError):
    """The predictor did not answer the smoke request with one prediction per row."""


@dataclass
class Deployment:
    name: str
    namespace: str
    model_uri: str  # models:/NAME/VERSION that is served
    version: str
    storage_uri: str
    action: str  # created | patched
    generation: int
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
        raise DeploymentError(f"registered model {model_name!r} has no {what}: {exc.message}") from exc


def storage_uri_of(client, model_name: str, version: str) -> str:
    """Where the version's files are (s3://.../models/m-<id>/artifacts), not its models:/ source."""
    return client.get_model_version_download_uri(model_name, version)


def input_example_of(model_uri: str):
    """The input example logged with the model, in the signature's dtypes."""
    from mlflow.models import Model

    example = Model.load(model_uri).load_input_example(model_uri)
    if example is None:
        raise DeploymentError(f"{model_uri} was logged without an input example; there is nothing to send as a smoke request")
    return example


# ---- the Kubernetes side -------------------------------------------------------------------------


def kserve_client():
    """A client from the pod's ServiceAccount in a cluster, else from ~/.kube/config."""
    from kserve import KServeClient

    return KServeClient()


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


def is_ready(obj: dict, generation: int) -> bool:
    """Ready, and the controller has seen this generation (a patch is not served by the old status)."""
    status = obj.get("status") or {}
    if int(status.get("observedGeneration") or 0) < generation:
        return False
    return any(c.get("type") == "Ready" and str(c.get("status")).lower() == "true" for c in status.get("conditions") or [])


def wait_until_ready(client, name: str, namespace: str, generation: int, timeout_seconds: float, poll_seconds: float = 5.0) -> dict:
    """Reads the InferenceService (GET only) until it is Ready for `generation`; raises with the controller's message."""
    deadline = time.monotonic() + timeout_seconds
    while True:
        try:
            obj = client.get(name, namespace=namespace)
        except RuntimeError as exc:
            raise DeploymentError(f"reading InferenceService {namespace}/{name} failed: {_api_message(exc)}") from exc
        if is_ready(obj, generation):
            return obj
        status = obj.get("status") or {}
        if (status.get("modelStatus") or {}).get("transitionStatus") in TERMINAL_TRANSITIONS:
            raise DeploymentError(f"InferenceService {namespace}/{name} failed: {describe_status(status)}")
        if time.monotonic() + poll_seconds > deadline:
            raise DeploymentError(
                f"InferenceService {namespace}/{name} not ready after {timeout_seconds:g} s: {describe_status(status)}"
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


def smoke_request(url: str, model_name: str, example, timeout: float = 30.0, retry_seconds: float = 0.0) -> dict:
    """Sends `example` (a DataFrame) to a V2 server at `url` and checks one prediction comes back per row.

    Works against any Open Inference Protocol server. Connection errors are retried for
    `retry_seconds` (a Service that just became Ready may take a moment to route). Returns the rows
    sent and the predictions; raises SmokeTestError with the status and body otherwise.
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
        raise SmokeTestError(f"smoke request to {endpoint} answered HTTP {status}: {text[:1000]}")
    try:
        outputs = json.loads(text)["outputs"]
        output = next((o for o in outputs if o.get("name") == "prediction"), outputs[0])
        predictions = output["data"]
    except (ValueError, KeyError, IndexError, TypeError) as exc:
        raise SmokeTestError(f"smoke request to {endpoint} answered HTTP 200 without V2 outputs: {text[:1000]}") from exc
    if len(predictions) != rows:
        raise SmokeTestError(f"smoke request to {endpoint} sent {rows} rows and got {len(predictions)} predictions: {text[:1000]}")
    return {"rows": rows, "output": output.get("name"), "predictions": predictions}


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
        timeout_seconds: How long to wait for Ready.
        poll_seconds: Time between status reads.
        smoke_url: Base URL of the predictor (default: its cluster Service).
        client: A `kserve.KServeClient` (default: from the pod's ServiceAccount or kubeconfig).
        mlflow_client: An `MlflowClient` (default: from MLFLOW_TRACKING_URI).
        resources: `serving.inference_service.Resources` of the predictor.

    Returns:
        What was deployed, where, and the smoke request's result.
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
    storage_uri = storage_uri_of(mlflow_client, model_name, served)
    try:
        isvc = build_inference_service(model_name, storage_uri, namespace, resources or Resources(), model_version=served)
    except InferenceServiceError as exc:
        raise DeploymentError(f"{model_uri} cannot be served by KServe: {exc}") from exc
    example = input_example_of(model_uri)

    client = client or kserve_client()
    action, applied = apply_inference_service(client, isvc)
    generation = int((applied.get("metadata") or {}).get("generation") or 1)
    log.info("InferenceService %s/%s %s (generation %d): %s", namespace, model_name, action, generation, storage_uri)
    wait_until_ready(client, model_name, namespace, generation, timeout_seconds, poll_seconds)

    base = smoke_url or f"http://{model_name}-predictor.{namespace}.svc.cluster.local"
    smoke = smoke_request(base, model_name, example, retry_seconds=30.0)
    return Deployment(model_name, namespace, model_uri, served, storage_uri, action, generation, infer_url(base, model_name), smoke)
