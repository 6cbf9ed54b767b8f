"""The registry side of a deployment: which version, where its files are, and that they load."""

from __future__ import annotations

from lifecycle.deploy.errors import DeploymentError
from lifecycle.modelling.serialization import UntrustedModelError
from lifecycle.registry.registered_model import TrustedModel, load_registered
from lifecycle.urls import mask_credentials


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
        raise DeploymentError(
            f"registered model {model_name!r} has no {what}: {mask_credentials(exc.message)}"
        ) from exc


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
