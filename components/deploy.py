from components import project_component


@project_component
def deploy_model(registration: dict, namespace: str, timeout_seconds: int, alias: str = "champion") -> dict:
    """Serves the model's `alias` version (default champion) as a KServe InferenceService and smoke-tests it.

    The champion is deployed whether or not this run's version became champion, so a run whose
    model did not beat the champion redeploys the same version and changes nothing. The service is
    created, or patched when it exists, and waited for (GET only) until it is Ready and the model's
    input example, sent as a V2 request, is answered by this version. Tracking URI from
    MLFLOW_TRACKING_URI.

    Args:
        registration: The register step's summary (its model_name names the registered model and the service).
        namespace: Namespace of the InferenceService.
        timeout_seconds: How long to wait for this version to answer.
        alias: Registered-model alias of the version to serve.

    Returns:
        Service name and namespace, served version and its storage URI, created or patched, endpoint, smoke result.
    """
    import json

    from lifecycle.deploy.release import deploy_model as deploy

    model_name = registration["model_name"]
    deployment = deploy(model_name, alias=alias, namespace=namespace, timeout_seconds=timeout_seconds)
    this_run = registration.get("version")
    note = (
        "this run's version"
        if this_run == deployment.version
        else f"this run registered v{this_run}, which is not {alias}"
    )
    print(
        f"InferenceService {deployment.namespace}/{deployment.name} {deployment.action}: serving "
        f"{deployment.model_uri} ({alias}; {note}) from {deployment.storage_uri}; "
        f"smoke request: {deployment.smoke['rows']} rows -> {len(deployment.smoke['predictions'])} predictions at "
        f"{deployment.url}"
    )
    summary = deployment.to_dict()
    print(json.dumps(summary, indent=2))
    return summary
