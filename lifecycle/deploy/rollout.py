"""The Kubernetes side of a deployment: the deployer's credentials, creating or patching the
InferenceService, and reading it (GET only) until the new version answers."""

from __future__ import annotations

import json
import logging
import os
import time
from pathlib import Path

from lifecycle.deploy.errors import DeploymentError, SmokeTestError
from lifecycle.deploy.smoke import smoke_request

log = logging.getLogger(__name__)

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
STUCK_REASONS = frozenset(
    {"ImagePullBackOff", "ErrImagePull", "InvalidImageName", "CreateContainerConfigError", "CreateContainerError"}
)
CRASH_LOOP_RESTARTS = 3
POD_LABEL = "serving.kserve.io/inferenceservice"  # on every pod KServe makes for the service
# Where the deploy task mounts the `model-deployer-token` Secret (token, ca.crt, namespace).
DEPLOYER_TOKEN_DIR = Path("/var/run/secrets/model-deployer")


def deployer_kubeconfig(token_dir: Path, host: str, port: str) -> dict:
    """A kubeconfig that speaks to the in-cluster API server with the token in `token_dir`."""
    return {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [
            {
                "name": "in-cluster",
                "cluster": {"server": f"https://{host}:{port}", "certificate-authority": str(token_dir / "ca.crt")},
            }
        ],
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
    return any(
        c.get("type") == "Ready" and str(c.get("status")).lower() == "true" for c in status.get("conditions") or []
    )


def has_failed(status: dict) -> bool:
    """The controller says the service will not get to Ready by waiting: the model failed to load or
    the spec is invalid, or the Deployment exceeded its progress deadline."""
    if (status.get("modelStatus") or {}).get("transitionStatus") in TERMINAL_TRANSITIONS:
        return True
    return any(
        c.get("type") in READY_CONDITIONS
        and str(c.get("status")).lower() == "false"
        and c.get("reason") in TERMINAL_REASONS
        for c in status.get("conditions") or []
    )


def stuck_pod(core_api, name: str, namespace: str, version: str) -> str | None:
    """Why a pod of `name` that serves `version` (its MODEL_VERSION) cannot start, in the kubelet's
    words (the container's last exit and its message), or None if none is stuck."""
    from lifecycle.deploy.inference_service import MODEL_VERSION_ENV

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
                words += f" after {container.restart_count} restarts; last exit code {last.exit_code}" + (
                    f" ({last.reason})" if last.reason else ""
                )
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
    client,
    name: str,
    namespace: str,
    version: str,
    base_url: str,
    example,
    timeout_seconds: float,
    poll_seconds: float = 5.0,
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
                log.warning(
                    "cannot read the pods of %s/%s (%s)%s",
                    namespace,
                    name,
                    _api_message(exc),
                    "" if read_pods else "; a pod that cannot start is reported at the timeout",
                )
            if stuck:
                raise DeploymentError(
                    f"InferenceService {namespace}/{name}: version {version} cannot start: {stuck}; "
                    f"{_who_answered(answer)}; {describe_status(status)}"
                )
        if time.monotonic() + poll_seconds > deadline:
            raise DeploymentError(
                f"InferenceService {namespace}/{name} not serving version {version} after {timeout_seconds:g} s: "
                f"{_who_answered(answer)}; {describe_status(status)}"
            )
        time.sleep(poll_seconds)
