"""Deploying a registered model version to KServe, and proving it answers.

The InferenceService points at the version's own artifacts in S3 (the MLflow download URI) and
carries the version's registered digest as MODEL_SHA256, so KServe serves exactly what was
registered: the step first loads the version through `lifecycle.registry.registered_model` itself (the
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

import logging
from dataclasses import asdict, dataclass, field
from typing import Any

from lifecycle.deploy.errors import DeploymentError
from lifecycle.deploy.inference_service import (
    DEFAULT_NAMESPACE,
    InferenceServiceError,
    Resources,
    build_inference_service,
    check_name,
)
from lifecycle.deploy.rollout import (
    apply_inference_service,
    kserve_client,
    wait_until_serving,
)
from lifecycle.deploy.smoke import infer_url
from lifecycle.deploy.version import (
    input_example_of,
    resolve_version,
    storage_uri_of,
    verified_version,
)

log = logging.getLogger(__name__)

DEFAULT_ALIAS = "champion"


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
        resources: `lifecycle.deploy.inference_service.Resources` of the predictor.

    Returns:
        What was deployed, where, and the smoke request's result (answered by the deployed version).
    """
    from mlflow import MlflowClient

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
            model_name,
            storage_uri,
            namespace,
            resources or Resources(),
            model_version=served,
            model_sha256=trusted.sha256,
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
