"""Serving a registered version on KServe: the InferenceService, its rollout, the smoke request."""

from lifecycle.deploy.errors import DeploymentError, SmokeTestError
from lifecycle.deploy.inference_service import (
    InferenceServiceError,
    Resources,
    build_inference_service,
)
from lifecycle.deploy.release import Deployment, deploy_model
from lifecycle.deploy.smoke import smoke_request

__all__ = [
    "Deployment",
    "DeploymentError",
    "InferenceServiceError",
    "Resources",
    "SmokeTestError",
    "build_inference_service",
    "deploy_model",
    "smoke_request",
]
