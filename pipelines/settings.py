"""Cluster-facing settings shared by every pipeline: resources, and where credentials come from.

Credentials never appear in compiled YAML: steps that talk to MLflow or S3 read them from a
ConfigMap and Secrets at run time (kfp-kubernetes). The local runner ignores these, and the
steps fall back to the caller's environment.
"""

from kfp import kubernetes

# CPU and memory (request, limit) per kind of step.
RESOURCES = {
    "light": {"cpu": ("250m", "1"), "memory": ("512Mi", "2Gi")},
    "compute": {"cpu": ("1", "2"), "memory": ("1Gi", "4Gi")},
}

MLFLOW_CONFIG_MAP = "mlflow-client"
MLFLOW_CONFIG_KEYS = {"MLFLOW_TRACKING_URI": "MLFLOW_TRACKING_URI", "MLFLOW_S3_ENDPOINT_URL": "MLFLOW_S3_ENDPOINT_URL"}
S3_SECRET = "pipeline-s3-credentials"  # the steps' own S3 identity (scripts/cluster-up.sh), not KFP's admin key
S3_SECRET_KEYS = {"accesskey": "AWS_ACCESS_KEY_ID", "secretkey": "AWS_SECRET_ACCESS_KEY"}
# MLflow's basic-auth app: MLflow's client reads these two variables on every request.
MLFLOW_CREDENTIALS_SECRET = "mlflow-credentials"
MLFLOW_CREDENTIALS_KEYS = {
    "MLFLOW_TRACKING_USERNAME": "MLFLOW_TRACKING_USERNAME",
    "MLFLOW_TRACKING_PASSWORD": "MLFLOW_TRACKING_PASSWORD",
}
# A ServiceAccount token Secret (keys token, ca.crt, namespace): the one identity that may deploy.
DEPLOYER_TOKEN_SECRET = "model-deployer-token"
DEPLOYER_TOKEN_PATH = "/var/run/secrets/model-deployer"
NOTIFY_SECRET = "pipeline-notify"
NOTIFY_SECRET_KEYS = {"webhook-url": "NOTIFY_WEBHOOK_URL"}


def sized(task, profile: str = "light"):
    spec = RESOURCES[profile]
    task.set_cpu_request(spec["cpu"][0]).set_cpu_limit(spec["cpu"][1])
    task.set_memory_request(spec["memory"][0]).set_memory_limit(spec["memory"][1])
    return task


def with_s3_credentials(task):
    """S3 endpoint and credentials from the cluster (optional: a local path needs none)."""
    kubernetes.use_config_map_as_env(task, MLFLOW_CONFIG_MAP, MLFLOW_CONFIG_KEYS, optional=True)
    kubernetes.use_secret_as_env(task, S3_SECRET, S3_SECRET_KEYS, optional=True)
    return task


def with_mlflow(task):
    """Tracking URI, MLflow and artifact-store credentials; side effects outside KFP, so never cached.

    Optional like the S3 Secret: without it the step still starts and fails on the registry's 401,
    naming the registry, instead of leaving its pod waiting for a Secret (the notification must run).
    """
    with_s3_credentials(task)
    kubernetes.use_secret_as_env(task, MLFLOW_CREDENTIALS_SECRET, MLFLOW_CREDENTIALS_KEYS, optional=True)
    task.set_caching_options(False)
    return task


def with_deployer_identity(task):
    """The deployer's ServiceAccount token as files; required, so the step never runs under another identity."""
    kubernetes.use_secret_as_volume(task, DEPLOYER_TOKEN_SECRET, mount_path=DEPLOYER_TOKEN_PATH, optional=False)
    return task


def with_notify_webhook(task):
    """The run-notification webhook URL (optional: without the Secret the message is only logged)."""
    kubernetes.use_secret_as_env(task, NOTIFY_SECRET, NOTIFY_SECRET_KEYS, optional=True)
    return task
