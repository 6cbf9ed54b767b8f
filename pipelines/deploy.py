"""The deploy pipeline: serves a registered model's current champion, with no training.

After `make approve` or `make rollback` moves `champion`, this brings the cluster to it.
"""

from kfp import dsl

from components.deploy import deploy_model
from pipelines.settings import sized, with_deployer_identity, with_mlflow


@dsl.pipeline(
    name="deploy",
    description="Serves models:/NAME@champion as a KServe InferenceService and smoke-tests it.",
)
def deploy(
    model_name: str,
    model_alias: str = "champion",
    serving_namespace: str = "models",
    deploy_timeout_seconds: int = 900,
) -> dict:
    """Serves the version that holds `model_alias` (KServe; cluster only).

    Args:
        model_name: MLflow registered model name (also the InferenceService name).
        model_alias: Alias of the version to serve.
        serving_namespace: Namespace of the InferenceService.
        deploy_timeout_seconds: How long to wait for the service to answer with this version.

    Returns:
        Service name and namespace, served version and its storage URI, created or patched, endpoint, smoke result.
    """
    task = with_deployer_identity(
        with_mlflow(
            sized(
                deploy_model(
                    model_name=model_name,
                    namespace=serving_namespace,
                    timeout_seconds=deploy_timeout_seconds,
                    alias=model_alias,
                )
            )
        )
    )
    return task.output
