from typing import Optional

from components import project_component


@project_component
def deploy_model(
    model_name: str,
    namespace: str,
    timeout_seconds: int,
    alias: str = "champion",
    registration: Optional[dict] = None,  # noqa: UP045 (KFP reads the annotation; it knows Optional)
) -> dict:
    """Serves the model's `alias` version (default champion) as a KServe InferenceService and smoke-tests it.

    The champion is deployed whether or not this run's version became champion, so a run whose
    model did not beat the champion redeploys the same version and changes nothing. The service is
    created, or patched when it exists, and waited for (GET only) until it is Ready and the model's
    input example, sent as a V2 request, is answered by this version. Tracking URI from
    MLFLOW_TRACKING_URI.

    Args:
        model_name: Registered model name (also the InferenceService name).
        namespace: Namespace of the InferenceService.
        timeout_seconds: How long to wait for this version to answer.
        alias: Registered-model alias of the version to serve.
        registration: The register step's summary when a training run deploys (its version is named
            in the log beside the one served); none when the champion is deployed on its own.

    Returns:
        Service name and namespace, served version and its storage URI, created or patched, endpoint, smoke result.
    """
    import json

    from lifecycle.deploy.release import deploy_model as deploy

    deployment = deploy(model_name, alias=alias, namespace=namespace, timeout_seconds=timeout_seconds)
    this_run = (registration or {}).get("version")
    if this_run is None:
        note = f"{alias} on its own"
    elif this_run == deployment.version:
        note = "this run's version"
    else:
        note = f"this run registered v{this_run}, which is not {alias}"
    print(
        f"InferenceService {deployment.namespace}/{deployment.name} {deployment.action}: serving "
        f"{deployment.model_uri} ({alias}; {note}) from {deployment.storage_uri}; "
        f"smoke request: {deployment.smoke['rows']} rows -> {len(deployment.smoke['predictions'])} predictions at "
        f"{deployment.url}"
    )
    summary = deployment.to_dict()
    print(json.dumps(summary, indent=2))
    return summary
