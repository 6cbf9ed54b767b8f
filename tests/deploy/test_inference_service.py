"""The InferenceService the deploy step creates, and the committed example of it."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from lifecycle.deploy.inference_service import (
    InferenceServiceError,
    Resources,
    as_dict,
    build_inference_service,
    to_yaml,
)

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "serving" / "inference-service.yaml"
EXAMPLE_URI = "s3://mlpipeline/mlflow/1/models/m-5f0c2a9e8b7d4c1e9a3f6b2d8c4e7a10/artifacts"
EXAMPLE_VERSION = "1"
DIGEST = "3f" * 32


def without_comments(text: str) -> str:
    return "".join(line for line in text.splitlines(keepends=True) if not line.startswith("#"))


def test_committed_example_is_what_the_builder_renders():
    rendered = to_yaml(
        build_inference_service("ames-house-prices", EXAMPLE_URI, model_version=EXAMPLE_VERSION, model_sha256=DIGEST)
    )
    assert without_comments(EXAMPLE.read_text()) == rendered


def test_committed_example_is_what_the_command_prints():
    """The command in the example's header, run as written."""
    command = next(
        line for line in EXAMPLE.read_text().splitlines() if "python -m lifecycle.deploy.inference_service" in line
    )
    args = command.split("python -m lifecycle.deploy.inference_service", 1)[1].split()
    printed = subprocess.run(
        [sys.executable, "-m", "lifecycle.deploy.inference_service", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert printed == without_comments(EXAMPLE.read_text())


def test_fields_match_the_runtime_and_the_cluster_setup():
    isvc = as_dict(build_inference_service("ames-house-prices", EXAMPLE_URI, model_version="7", model_sha256=DIGEST))
    assert isvc["apiVersion"] == "serving.kserve.io/v1beta1" and isvc["kind"] == "InferenceService"
    assert isvc["metadata"]["name"] == "ames-house-prices"
    assert isvc["metadata"]["namespace"] == "models"
    assert isvc["metadata"]["annotations"] == {
        "serving.kserve.io/deploymentMode": "Standard",
        "kfp-tabular-lifecycle/model-version": "7",
    }
    predictor = isvc["spec"]["predictor"]
    assert predictor["serviceAccountName"] == "model-s3-reader"
    model = predictor["model"]
    assert model["modelFormat"] == {"name": "mlflow-sklearn"}
    assert model["runtime"] == "kfp-tabular-sklearn"
    assert model["protocolVersion"] == "v2"
    assert model["storageUri"] == EXAMPLE_URI
    assert model["resources"] == {"requests": {"cpu": "500m", "memory": "1Gi"}, "limits": {"cpu": "1", "memory": "2Gi"}}
    assert model["env"] == [
        {"name": "MODEL_VERSION", "value": "7"},  # the predictor reports it as model_version
        {"name": "MODEL_SHA256", "value": DIGEST},  # the predictor loads only files with this digest
    ]
    assert "name" not in model, "the runtime names the container"
    assert model["ports"] == [
        {"name": "http1", "containerPort": 8080, "protocol": "TCP"},
        {"name": "h2c", "containerPort": 8081, "protocol": "TCP"},  # gRPC
    ]


def test_without_a_version_there_is_no_annotation_and_only_the_digest_in_the_env():
    isvc = as_dict(build_inference_service("ames-house-prices", EXAMPLE_URI, model_sha256=DIGEST))
    assert isvc["metadata"]["annotations"] == {"serving.kserve.io/deploymentMode": "Standard"}
    assert isvc["spec"]["predictor"]["model"]["env"] == [{"name": "MODEL_SHA256", "value": DIGEST}]


@pytest.mark.parametrize("digest", ["", "3f" * 31, "3F" * 32, "zz" * 32, None])
def test_a_service_without_a_well_formed_digest_is_refused(digest):
    with pytest.raises(InferenceServiceError, match="model_sha256"):
        build_inference_service("ames-house-prices", EXAMPLE_URI, model_sha256=digest)


def test_version_is_a_string_in_the_env():
    """Kubernetes env values are strings; MlflowClient versions may come as ints."""
    isvc = as_dict(build_inference_service("ames-house-prices", EXAMPLE_URI, model_version=12, model_sha256=DIGEST))
    assert isvc["spec"]["predictor"]["model"]["env"][0] == {"name": "MODEL_VERSION", "value": "12"}
    assert isvc["metadata"]["annotations"]["kfp-tabular-lifecycle/model-version"] == "12"


def test_resources_and_namespace_are_configurable():
    isvc = as_dict(
        build_inference_service(
            "m", "s3://b/k", namespace="serving", resources=Resources(("1", "2"), ("2Gi", "4Gi")), model_sha256=DIGEST
        )
    )
    assert isvc["metadata"]["namespace"] == "serving"
    assert isvc["spec"]["predictor"]["model"]["resources"] == {
        "requests": {"cpu": "1", "memory": "2Gi"},
        "limits": {"cpu": "2", "memory": "4Gi"},
    }


def test_typed_object_round_trips_through_yaml():
    isvc = build_inference_service("ames-house-prices", EXAMPLE_URI, model_sha256=DIGEST)
    assert yaml.safe_load(to_yaml(isvc)) == as_dict(isvc)


@pytest.mark.parametrize(
    "uri",
    [
        "file:///tmp/mlartifacts/1/models/m-1/artifacts",
        "mlflow-artifacts:/1/models/m-1/artifacts",
        "/local/path",
        "s3://",
        "gs://b/k",
        "",
    ],
)
def test_storage_uri_must_be_s3(uri):
    with pytest.raises(InferenceServiceError, match=r"storage_uri .* is not an s3:// URI"):
        build_inference_service("ames-house-prices", uri, model_sha256=DIGEST)


@pytest.mark.parametrize(
    "name", ["Ames-House-Prices", "ames_house_prices", "1ames", "ames-", "-ames", "", "a" * 64, "ames.house"]
)
def test_name_must_be_a_dns_1035_label(name):
    with pytest.raises(InferenceServiceError, match=r"InferenceService name .* is not a DNS-1035 label"):
        build_inference_service(name, EXAMPLE_URI, model_sha256=DIGEST)


def test_longest_valid_name_is_accepted():
    assert as_dict(build_inference_service("a" * 63, EXAMPLE_URI, model_sha256=DIGEST))["metadata"]["name"] == "a" * 63


def test_bad_namespace_is_named():
    with pytest.raises(InferenceServiceError, match=r"namespace 'Models' is not a DNS-1035 label"):
        build_inference_service("ames-house-prices", EXAMPLE_URI, namespace="Models", model_sha256=DIGEST)


def test_command_refuses_bad_input_with_a_message():
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "lifecycle.deploy.inference_service",
            "--name",
            "ames_house",
            "--storage-uri",
            EXAMPLE_URI,
            "--model-sha256",
            DIGEST,
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    assert done.returncode == 2
    assert "error: InferenceService name 'ames_house' is not a DNS-1035 label" in done.stderr
    assert done.stdout == ""
