"""The KServe InferenceService that serves a registered model, built with the SDK's typed classes.

    python -m lifecycle.deploy.inference_service --name ames-house-prices \\
        --storage-uri s3://mlpipeline/mlflow/1/models/m-.../artifacts --model-sha256 <the version's model_sha256 tag> \\
        > serving/inference-service.yaml

The service runs in Standard (raw Deployment) mode on the `kfp-tabular-sklearn` ClusterServingRuntime
(the project's own predictor, which speaks V1 and V2 over REST and V2 over gRPC), downloads the model from S3 with the
credentials of the `model-s3-reader` ServiceAccount, and is named after the registered model, so
the predictor answers at /v2/models/<name>/infer. The registered version goes to the predictor as
MODEL_VERSION, which it returns as `model_version` in every V2 answer: that is how the deploy step
tells the new version's answers from the old one's during a rolling update. The version's
registered digest goes to it as MODEL_SHA256: the predictor loads the downloaded files only if the
model file has that sha256, so a file changed in the bucket after registration is never served.
"""

from __future__ import annotations

import argparse
import re
import sys
from dataclasses import dataclass

from lifecycle.contract.protocol import MODEL_VERSION_ENV

DEFAULT_NAMESPACE = "models"
DEPLOYMENT_MODE_ANNOTATION = "serving.kserve.io/deploymentMode"
DEPLOYMENT_MODE = "Standard"
RUNTIME = "kfp-tabular-sklearn"
MODEL_FORMAT = "mlflow-sklearn"
PROTOCOL_VERSION = "v2"
SERVICE_ACCOUNT = "model-s3-reader"
MODEL_VERSION_ANNOTATION = "kfp-tabular-lifecycle/model-version"
MODEL_SHA256_ENV = "MODEL_SHA256"
# The predictor's ports, as the runtime declares them: REST first (KServe's Service targets the first
# port), then the Open Inference Protocol's gRPC service, named h2c as Knative and KServe expect.
PORTS = (("http1", 8080), ("h2c", 8081))
_SHA256 = re.compile(r"^[0-9a-f]{64}$")

# Kubernetes DNS-1035 label: what a Service name must be, and KServe derives Services from this name.
_DNS_1035 = re.compile(r"^[a-z]([-a-z0-9]*[a-z0-9])?$")
_MAX_NAME = 63


class InferenceServiceError(ValueError):
    """An InferenceService cannot be built from these values."""


@dataclass(frozen=True)
class Resources:
    """CPU and memory (request, limit) of the predictor container."""

    cpu: tuple[str, str] = ("500m", "1")
    memory: tuple[str, str] = ("1Gi", "2Gi")


def check_name(name: str, what: str = "InferenceService name") -> str:
    """The registered model name becomes the service name, so it must be a DNS-1035 label too."""
    if not isinstance(name, str) or len(name) > _MAX_NAME or not _DNS_1035.match(name):
        raise InferenceServiceError(
            f"{what} {name!r} is not a DNS-1035 label: use at most {_MAX_NAME} lowercase letters, "
            "digits and '-', starting with a letter and ending with a letter or digit"
        )
    return name


def check_storage_uri(storage_uri: str) -> str:
    if not isinstance(storage_uri, str) or not storage_uri.startswith("s3://") or len(storage_uri) <= len("s3://"):
        raise InferenceServiceError(
            f"storage_uri {storage_uri!r} is not an s3:// URI: KServe downloads the model with the model-s3-reader "
            "credentials, so the MLflow artifact root must be on S3 (mlflow server --default-artifact-root s3://...)"
        )
    return storage_uri


def build_inference_service(
    name: str,
    storage_uri: str,
    namespace: str = DEFAULT_NAMESPACE,
    resources: Resources = Resources(),
    model_version: str | None = None,
    *,
    model_sha256: str,
    service_account: str = SERVICE_ACCOUNT,
    runtime: str = RUNTIME,
):
    """The InferenceService for one registered model version.

    Args:
        name: Service name, also the model name in the predictor's URL paths (a DNS-1035 label).
        storage_uri: s3:// location of the MLflow model directory (MLmodel, model.skops, ...).
        namespace: Namespace of the service.
        resources: Predictor CPU and memory requests and limits.
        model_version: Registered version, recorded as an annotation so `kubectl get -o yaml` says what is
            served, and set as MODEL_VERSION on the predictor container, which reports it in V2 answers.
        model_sha256: The version's registered model digest (its `model_sha256` tag), set as
            MODEL_SHA256: the predictor refuses files with any other digest.
        service_account: ServiceAccount whose Secret holds the S3 credentials.
        runtime: The ServingRuntime or ClusterServingRuntime to run.

    Returns:
        A `kserve.V1beta1InferenceService`.
    """
    from kserve import (
        V1beta1InferenceService,
        V1beta1InferenceServiceSpec,
        V1beta1ModelFormat,
        V1beta1ModelSpec,
        V1beta1PredictorSpec,
        constants,
    )
    from kubernetes.client import V1ContainerPort, V1EnvVar, V1ObjectMeta, V1ResourceRequirements

    check_name(name)
    check_storage_uri(storage_uri)
    check_name(namespace, "namespace")
    if not isinstance(model_sha256, str) or not _SHA256.fullmatch(model_sha256):
        raise InferenceServiceError(f"model_sha256 {model_sha256!r} is not a sha256 digest (64 lowercase hex digits)")
    annotations = {DEPLOYMENT_MODE_ANNOTATION: DEPLOYMENT_MODE}
    env = [V1EnvVar(name=MODEL_SHA256_ENV, value=model_sha256)]
    if model_version is not None:
        annotations[MODEL_VERSION_ANNOTATION] = str(model_version)
        env.insert(0, V1EnvVar(name=MODEL_VERSION_ENV, value=str(model_version)))
    return V1beta1InferenceService(
        api_version=constants.KSERVE_V1BETA1,
        kind=constants.KSERVE_KIND_INFERENCESERVICE,
        metadata=V1ObjectMeta(name=name, namespace=namespace, annotations=annotations),
        spec=V1beta1InferenceServiceSpec(
            predictor=V1beta1PredictorSpec(
                service_account_name=service_account,
                model=V1beta1ModelSpec(
                    name=None,  # the runtime names the container (kserve-container)
                    model_format=V1beta1ModelFormat(name=MODEL_FORMAT),
                    runtime=runtime,
                    protocol_version=PROTOCOL_VERSION,
                    storage_uri=storage_uri,
                    env=env,
                    ports=[V1ContainerPort(name=n, container_port=port, protocol="TCP") for n, port in PORTS],
                    resources=V1ResourceRequirements(
                        requests={"cpu": resources.cpu[0], "memory": resources.memory[0]},
                        limits={"cpu": resources.cpu[1], "memory": resources.memory[1]},
                    ),
                ),
            )
        ),
    )


def as_dict(inference_service) -> dict:
    """The object as the API server receives it (camelCase keys, unset fields left out)."""
    from kubernetes.client import ApiClient

    return ApiClient().sanitize_for_serialization(inference_service)


def to_yaml(inference_service) -> str:
    import yaml

    return yaml.safe_dump(as_dict(inference_service), sort_keys=False)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m lifecycle.deploy.inference_service",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--name", required=True, help="service name = registered model name (DNS-1035 label)")
    parser.add_argument(
        "--storage-uri",
        required=True,
        help="s3:// URI of the model version (MlflowClient().get_model_version_download_uri)",
    )
    parser.add_argument("--namespace", default=DEFAULT_NAMESPACE, help=f"default {DEFAULT_NAMESPACE}")
    parser.add_argument(
        "--model-version", help="registered version, recorded as an annotation and set as the predictor's MODEL_VERSION"
    )
    parser.add_argument(
        "--model-sha256", required=True, help="the version's model_sha256 tag, set as the predictor's MODEL_SHA256"
    )
    parser.add_argument("--cpu", nargs=2, metavar=("REQUEST", "LIMIT"), default=Resources.cpu)
    parser.add_argument("--memory", nargs=2, metavar=("REQUEST", "LIMIT"), default=Resources.memory)
    args = parser.parse_args(argv)
    # kserve.model_server (imported with kserve) parses sys.argv; these options are not its options.
    sys.argv[1:] = []
    try:
        isvc = build_inference_service(
            args.name,
            args.storage_uri,
            args.namespace,
            Resources(tuple(args.cpu), tuple(args.memory)),
            args.model_version,
            model_sha256=args.model_sha256,
        )
    except InferenceServiceError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    sys.stdout.write(to_yaml(isvc))
    return 0


if __name__ == "__main__":
    sys.exit(main())
