"""The cluster's trust boundaries, checked on the rendered manifests and on cluster-up.sh:

- who reaches whom (NetworkPolicies, evaluated with Kubernetes' rules for the pods that run here),
- who may create InferenceServices (RBAC, evaluated for each ServiceAccount),
- the predictor's read-only root filesystem, MLflow's authentication,
- credentials: none committed, every one generated at cluster-up, one S3 identity per client.

KFP's own objects come from remote bases that cannot be rendered offline; the two that matter here
(its SeaweedFS NetworkPolicy and the pipeline-runner Role, as of KFP 2.17.0) are written out below.
"""

from __future__ import annotations

import json
import os
import subprocess
from dataclasses import dataclass, field
from urllib.parse import urlsplit

import pytest

from .conftest import CLUSTER_SCRIPTS, cluster_up_variable, find

# --- NetworkPolicy evaluation --------------------------------------------------------------------

# kubeflow/pipelines 2.17.0 manifests/kustomize/third-party/seaweedfs/base/seaweedfs/seaweedfs-networkpolicy.yaml
KFP_SEAWEEDFS_POLICY = {
    "kind": "NetworkPolicy",
    "metadata": {"name": "seaweedfs", "namespace": "kubeflow"},
    "spec": {
        "podSelector": {"matchExpressions": [{"key": "app", "operator": "In", "values": ["seaweedfs"]}]},
        "policyTypes": ["Ingress"],
        "ingress": [
            {
                "from": [
                    {
                        "namespaceSelector": {
                            "matchExpressions": [
                                {"key": "app.kubernetes.io/part-of", "operator": "In", "values": ["kubeflow-profile"]}
                            ]
                        }
                    }
                ],
                "ports": [{"port": 8333}],
            },
            {
                "from": [
                    {
                        "namespaceSelector": {
                            "matchExpressions": [
                                {"key": "kubernetes.io/metadata.name", "operator": "In", "values": ["istio-system"]}
                            ]
                        }
                    }
                ]
            },
            {"from": [{"podSelector": {}}], "ports": [{"port": 8333}]},
        ],
    },
}


@dataclass(frozen=True)
class Pod:
    namespace: str
    labels: dict = field(default_factory=dict)

    @property
    def namespace_labels(self) -> dict:
        return {"kubernetes.io/metadata.name": self.namespace}


def selects(selector: dict, labels: dict) -> bool:
    for key, value in selector.get("matchLabels", {}).items():
        if labels.get(key) != value:
            return False
    for expression in selector.get("matchExpressions", []):
        key, operator, values = expression["key"], expression["operator"], expression.get("values", [])
        present = key in labels
        ok = {
            "In": present and labels.get(key) in values,
            "NotIn": not present or labels.get(key) not in values,
            "Exists": present,
            "DoesNotExist": not present,
        }[operator]
        if not ok:
            return False
    return True


def peer_matches(peer: dict, pod: Pod, policy_namespace: str) -> bool:
    if "ipBlock" in peer:
        return False  # the pods here are not addressed by CIDR; no policy of ours uses ipBlock
    if "namespaceSelector" in peer:
        if not selects(peer["namespaceSelector"], pod.namespace_labels):
            return False
    elif pod.namespace != policy_namespace:
        return False
    return selects(peer.get("podSelector", {}), pod.labels)


def port_matches(ports: list | None, port: int, protocol: str) -> bool:
    return not ports or any(p.get("port") == port and p.get("protocol", "TCP") == protocol for p in ports)


def side_allows(policies: list[dict], pod: Pod, other: Pod, port: int, protocol: str, direction: str) -> bool:
    """Kubernetes' rule: a pod no policy selects for this direction is open; otherwise the union of
    the selecting policies' rules must admit the peer and port."""
    key, peers = ("ingress", "from") if direction == "Ingress" else ("egress", "to")
    selecting = [
        p
        for p in policies
        if p["metadata"]["namespace"] == pod.namespace
        and direction in p["spec"].get("policyTypes", ["Ingress"])
        and selects(p["spec"]["podSelector"], pod.labels)
    ]
    if not selecting:
        return True
    for policy in selecting:
        for rule in policy["spec"].get(key, []):
            if port_matches(rule.get("ports"), port, protocol) and (
                peers not in rule
                or any(peer_matches(peer, other, policy["metadata"]["namespace"]) for peer in rule[peers])
            ):
                return True
    return False


def reaches(policies: list[dict], source: Pod, target: Pod, port: int, protocol: str = "TCP") -> bool:
    """A connection from source to target's pod port: the source's egress and the target's ingress both allow it."""
    return side_allows(policies, source, target, port, protocol, "Egress") and side_allows(
        policies, target, source, port, protocol, "Ingress"
    )


# The pods that run here, with the labels their controllers give them.
PIPELINE_STEP = Pod(
    "kubeflow", {"pipelines.kubeflow.org/v2_component": "true", "workflows.argoproj.io/workflow": "training-x7k2p"}
)
KFP_UI = Pod("kubeflow", {"app": "ml-pipeline-ui", "application-crd-id": "kubeflow-pipelines"})
SEAWEEDFS = Pod("kubeflow", {"app": "seaweedfs", "application-crd-id": "kubeflow-pipelines"})
PREDICTOR = Pod(
    "models",
    {
        "serving.kserve.io/inferenceservice": "ames-house-prices",
        "component": "predictor",
        "app": "isvc.ames-house-prices-predictor",
    },
)
OTHER_PREDICTOR = Pod("models", {"serving.kserve.io/inferenceservice": "other-model", "component": "predictor"})
OTHER_IN_MODELS = Pod("models", {"app": "debug-shell"})
OTHER_IN_MLFLOW = Pod("mlflow", {"app": "debug-shell"})
DNS = Pod("kube-system", {"k8s-app": "kube-dns"})
ELSEWHERE = Pod("default", {"app": "anything"})
S3_PORT, MLFLOW_PORT, PREDICTOR_PORT, FILER_PORT = 8333, 5000, 8080, 8888
PREDICTOR_GRPC_PORT = 8081


@pytest.fixture(scope="module")
def policies(objects) -> list[dict]:
    return [o for o in objects if o["kind"] == "NetworkPolicy"] + [KFP_SEAWEEDFS_POLICY]


@pytest.fixture(scope="module")
def mlflow_pod(objects) -> Pod:
    return Pod("mlflow", find(objects, "Deployment", "mlflow", "mlflow")["spec"]["template"]["metadata"]["labels"])


def test_mlflow_accepts_pipeline_steps_only(policies, mlflow_pod):
    assert reaches(policies, PIPELINE_STEP, mlflow_pod, MLFLOW_PORT)
    for outsider in (KFP_UI, PREDICTOR, OTHER_IN_MODELS, OTHER_IN_MLFLOW, ELSEWHERE):
        assert not reaches(policies, outsider, mlflow_pod, MLFLOW_PORT), outsider


def test_mlflow_reaches_only_dns_and_the_s3_store(policies, mlflow_pod):
    assert reaches(policies, mlflow_pod, SEAWEEDFS, S3_PORT)
    assert reaches(policies, mlflow_pod, DNS, 53, "UDP") and reaches(policies, mlflow_pod, DNS, 53, "TCP")
    assert not reaches(policies, mlflow_pod, SEAWEEDFS, FILER_PORT)
    for target, port in ((ELSEWHERE, 443), (PIPELINE_STEP, 8080), (PREDICTOR, PREDICTOR_PORT), (KFP_UI, 3000)):
        assert not reaches(policies, mlflow_pod, target, port), target


@pytest.mark.parametrize("port", [PREDICTOR_PORT, PREDICTOR_GRPC_PORT], ids=["rest", "grpc"])
def test_predictors_accept_pipeline_steps_only(policies, port):
    assert reaches(policies, PIPELINE_STEP, PREDICTOR, port)
    for outsider in (KFP_UI, OTHER_IN_MODELS, OTHER_PREDICTOR, ELSEWHERE, OTHER_IN_MLFLOW):
        assert not reaches(policies, outsider, PREDICTOR, port), outsider
    assert not reaches(policies, PIPELINE_STEP, PREDICTOR, 9000), "no other port of a predictor is open"


def test_predictors_reach_only_dns_and_the_s3_store(policies, mlflow_pod):
    assert reaches(policies, PREDICTOR, SEAWEEDFS, S3_PORT)
    assert reaches(policies, PREDICTOR, DNS, 53, "UDP")
    for target, port in (
        (SEAWEEDFS, FILER_PORT),
        (mlflow_pod, MLFLOW_PORT),
        (OTHER_PREDICTOR, PREDICTOR_PORT),
        (PIPELINE_STEP, 8080),
        (ELSEWHERE, 443),
        (KFP_UI, 3000),
    ):
        assert not reaches(policies, PREDICTOR, target, port), target


def test_nothing_else_in_models_reaches_anything_or_is_reached(policies):
    for target, port, protocol in (
        (SEAWEEDFS, S3_PORT, "TCP"),
        (DNS, 53, "UDP"),
        (PREDICTOR, PREDICTOR_PORT, "TCP"),
        (ELSEWHERE, 443, "TCP"),
    ):
        assert not reaches(policies, OTHER_IN_MODELS, target, port, protocol), target
    for source in (PIPELINE_STEP, PREDICTOR, ELSEWHERE):
        assert not reaches(policies, source, OTHER_IN_MODELS, 8080), source


def test_the_s3_store_admits_kfp_mlflow_and_predictors_only(policies, mlflow_pod):
    for client in (PIPELINE_STEP, KFP_UI, mlflow_pod, PREDICTOR):
        assert reaches(policies, client, SEAWEEDFS, S3_PORT), client
    for outsider in (OTHER_IN_MODELS, OTHER_IN_MLFLOW, ELSEWHERE):
        assert not reaches(policies, outsider, SEAWEEDFS, S3_PORT), outsider


def test_without_the_projects_policies_the_cluster_is_open(mlflow_pod):
    """The evaluation can tell: with KFP's policy alone, anything reaches MLflow and the predictors."""
    only_kfp = [KFP_SEAWEEDFS_POLICY]
    assert reaches(only_kfp, ELSEWHERE, mlflow_pod, MLFLOW_PORT)
    assert reaches(only_kfp, OTHER_IN_MODELS, PREDICTOR, PREDICTOR_PORT)
    assert not reaches(only_kfp, mlflow_pod, SEAWEEDFS, S3_PORT)


@pytest.mark.parametrize(
    ("selector", "labels", "expected"),
    [
        ({"matchLabels": {"a": "1"}}, {"a": "1", "b": "2"}, True),
        ({"matchLabels": {"a": "1"}}, {"a": "2"}, False),
        ({"matchExpressions": [{"key": "a", "operator": "Exists"}]}, {"a": ""}, True),
        ({"matchExpressions": [{"key": "a", "operator": "In", "values": ["x"]}]}, {}, False),
        ({"matchExpressions": [{"key": "a", "operator": "NotIn", "values": ["x"]}]}, {}, True),
        ({}, {"anything": "at-all"}, True),
    ],
)
def test_label_selectors_follow_kubernetes(selector, labels, expected):
    assert selects(selector, labels) is expected


# --- RBAC ----------------------------------------------------------------------------------------

# kubeflow/pipelines 2.17.0 manifests/kustomize/base/pipeline/pipeline-runner-role.yaml (bound to
# ServiceAccount kubeflow/pipeline-runner): nothing on serving.kserve.io.
KFP_PIPELINE_RUNNER = [
    {
        "kind": "Role",
        "metadata": {"name": "pipeline-runner", "namespace": "kubeflow"},
        "rules": [
            {"apiGroups": [""], "resources": ["secrets"], "verbs": ["get"]},
            {"apiGroups": [""], "resources": ["configmaps"], "verbs": ["get", "watch", "list"]},
            {"apiGroups": [""], "resources": ["persistentvolumes", "persistentvolumeclaims"], "verbs": ["*"]},
            {
                "apiGroups": ["snapshot.storage.k8s.io"],
                "resources": ["volumesnapshots"],
                "verbs": ["create", "delete", "get"],
            },
            {
                "apiGroups": ["argoproj.io"],
                "resources": ["workflows"],
                "verbs": ["get", "list", "watch", "update", "patch"],
            },
            {"apiGroups": [""], "resources": ["pods", "pods/exec", "pods/log", "services"], "verbs": ["*"]},
            {"apiGroups": ["", "apps", "extensions"], "resources": ["deployments", "replicasets"], "verbs": ["*"]},
            {"apiGroups": ["kubeflow.org"], "resources": ["*"], "verbs": ["*"]},
            {"apiGroups": ["batch"], "resources": ["jobs"], "verbs": ["*"]},
            {"apiGroups": ["machinelearning.seldon.io"], "resources": ["seldondeployments"], "verbs": ["*"]},
        ],
    },
    {
        "kind": "RoleBinding",
        "metadata": {"name": "pipeline-runner-binding", "namespace": "kubeflow"},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "pipeline-runner"},
        "subjects": [{"kind": "ServiceAccount", "name": "pipeline-runner", "namespace": "kubeflow"}],
    },
]
PIPELINE_RUNNER = ("kubeflow", "pipeline-runner")
MODEL_DEPLOYER = ("kubeflow", "model-deployer")
ISVC = ("serving.kserve.io", "inferenceservices")


def can(rbac: list[dict], account: tuple[str, str], verb: str, resource: tuple[str, str], namespace: str) -> bool:
    """Whether ServiceAccount NAMESPACE/NAME may VERB RESOURCE (group, plural) in a namespace."""
    group, plural = resource
    for binding in rbac:
        if binding["kind"] not in ("RoleBinding", "ClusterRoleBinding"):
            continue
        if binding["kind"] == "RoleBinding" and binding["metadata"]["namespace"] != namespace:
            continue
        if not any(
            s.get("kind") == "ServiceAccount" and (s.get("namespace"), s["name"]) == account
            for s in binding["subjects"]
        ):
            continue
        ref = binding["roleRef"]
        role_namespace = binding["metadata"].get("namespace") if ref["kind"] == "Role" else None
        for role in rbac:
            if (
                role["kind"] == ref["kind"]
                and role["metadata"]["name"] == ref["name"]
                and role["metadata"].get("namespace") == role_namespace
            ):
                for rule in role.get("rules", []):
                    if (
                        ({group, "*"} & set(rule.get("apiGroups", [])))
                        and ({plural, "*"} & set(rule.get("resources", [])))
                        and ({verb, "*"} & set(rule.get("verbs", [])))
                    ):
                        return True
    return False


@pytest.fixture(scope="module")
def rbac(objects) -> list[dict]:
    kinds = ("Role", "RoleBinding", "ClusterRole", "ClusterRoleBinding")
    return [o for o in objects if o["kind"] in kinds] + KFP_PIPELINE_RUNNER


def test_model_deployer_may_deploy_and_read_pods_in_models_only(rbac):
    for verb in ("get", "create", "patch"):
        assert can(rbac, MODEL_DEPLOYER, verb, ISVC, "models"), verb
    for verb in ("get", "list", "watch"):
        assert can(rbac, MODEL_DEPLOYER, verb, ("", "pods"), "models"), verb
    for verb in ("delete", "update", "deletecollection"):
        assert not can(rbac, MODEL_DEPLOYER, verb, ISVC, "models"), verb
    assert not can(rbac, MODEL_DEPLOYER, "create", ISVC, "kubeflow")
    for resource in (("", "secrets"), ("", "pods/exec"), ("", "serviceaccounts"), ("apps", "deployments")):
        assert not can(rbac, MODEL_DEPLOYER, "get", resource, "models") and not can(
            rbac, MODEL_DEPLOYER, "create", resource, "models"
        )


def test_pipeline_runner_cannot_touch_inferenceservices(rbac):
    for namespace in ("models", "kubeflow"):
        for verb in ("get", "create", "patch", "update", "delete"):
            assert not can(rbac, PIPELINE_RUNNER, verb, ISVC, namespace), (verb, namespace)
    # The evaluation can tell: KFP's Role does give pipeline-runner pods in its own namespace.
    assert can(rbac, PIPELINE_RUNNER, "create", ("", "pods"), "kubeflow")


def test_model_deployer_is_the_only_subject_that_may_create_or_patch_inferenceservices(rbac):
    subjects = {
        (s.get("namespace"), s["name"])
        for o in rbac
        if o["kind"].endswith("Binding")
        for s in o["subjects"]
        if s["kind"] == "ServiceAccount"
    }
    assert MODEL_DEPLOYER in subjects and PIPELINE_RUNNER in subjects
    for verb in ("create", "patch"):
        allowed = {s for s in subjects if can(rbac, s, verb, ISVC, "models")}
        assert allowed == {MODEL_DEPLOYER}, verb
    assert not [o for o in rbac if o["kind"] in ("ClusterRole", "ClusterRoleBinding")], "no cluster-wide rights"


def test_model_deployer_token_is_a_service_account_token_secret(objects):
    account = find(objects, "ServiceAccount", "model-deployer", "kubeflow")
    assert account.get("automountServiceAccountToken") is False, (
        "no pod runs with this account's token mounted by default"
    )
    token = find(objects, "Secret", "model-deployer-token", "kubeflow")
    assert token["type"] == "kubernetes.io/service-account-token"
    assert token["metadata"]["annotations"] == {"kubernetes.io/service-account.name": "model-deployer"}
    assert not token.get("data") and not token.get("stringData"), "the token controller fills it"


# --- predictor and MLflow pods -------------------------------------------------------------------


def test_predictor_container_has_a_read_only_root_filesystem(objects):
    runtime = find(objects, "ClusterServingRuntime", "kfp-tabular-sklearn")["spec"]
    (container,) = runtime["containers"]
    context = container["securityContext"]
    assert context["readOnlyRootFilesystem"] is True
    assert context["runAsNonRoot"] is True and context["allowPrivilegeEscalation"] is False
    assert context["capabilities"] == {"drop": ["ALL"]} and context.get("privileged") is False
    # Scratch space: an emptyDir at /tmp (and HOME there), declared in the runtime so KServe adds it to the pod.
    mounts = {m["mountPath"]: m["name"] for m in container["volumeMounts"]}
    volumes = {v["name"]: v for v in runtime["volumes"]}
    assert "emptyDir" in volumes[mounts["/tmp"]]
    assert {e["name"]: e.get("value") for e in container["env"]}["HOME"] == "/tmp"


def test_mlflow_runs_the_basic_auth_app_with_its_admin_from_a_secret(objects):
    deployment = find(objects, "Deployment", "mlflow", "mlflow")
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    assert "--app-name=basic-auth" in container["args"]
    env = {e["name"]: e for e in container["env"]}
    for key in ("MLFLOW_AUTH_ADMIN_USERNAME", "MLFLOW_AUTH_ADMIN_PASSWORD", "MLFLOW_FLASK_SERVER_SECRET_KEY"):
        assert env[key]["valueFrom"]["secretKeyRef"] == {"name": "mlflow-admin", "key": key}, key
    config_path = env["MLFLOW_AUTH_CONFIG_PATH"]["value"]
    mount = next(m for m in container["volumeMounts"] if config_path.startswith(m["mountPath"] + "/"))
    volume = next(v for v in deployment["spec"]["template"]["spec"]["volumes"] if v["name"] == mount["name"])
    config = find(objects, "ConfigMap", volume["configMap"]["name"], "mlflow")["data"][config_path.rsplit("/", 1)[1]]
    assert "admin_password" not in config and "admin_username" not in config, "the admin comes from the Secret only"
    data_mount = next(m["mountPath"] for m in container["volumeMounts"] if m["name"] == "data")
    assert f"database_uri = sqlite:///{data_mount}/" in config, "users must survive a restart: on the data volume"


def test_pipeline_steps_find_mlflow_credentials_under_the_contract_names(objects):
    secret = find(objects, "Secret", "mlflow-credentials", "kubeflow")
    assert not secret.get("data") and not secret.get("stringData")
    calls = generated_secrets()
    assert calls[("kubeflow", "mlflow-credentials")] == {"MLFLOW_TRACKING_USERNAME", "MLFLOW_TRACKING_PASSWORD"}


# --- credentials ---------------------------------------------------------------------------------


def generated_secrets() -> dict[tuple[str, str], set[str]]:
    """What cluster-up.sh's generate_credentials fills: its own code, run with fill_secret recording
    its arguments instead of calling kubectl."""
    script = (
        f'source "{CLUSTER_SCRIPTS[0]}"\n'
        'fill_secret() { local ns="$1" name="$2"; shift 2; local p keys=(); for p in "$@"; do keys+=("${p%%=*}"); done;'
        ' printf "%s %s %s\\n" "$ns" "$name" "${keys[*]}"; SECRET_CHANGED=0; }\n'
        "generate_credentials\n"
    )
    done = subprocess.run(["bash", "-c", script], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    calls = {}
    for line in done.stdout.splitlines():
        namespace, name, *keys = line.split()
        calls[(namespace, name)] = set(keys)
    return calls


def test_every_secret_a_workload_reads_is_generated_at_cluster_up(objects):
    """Each key read through secretKeyRef, and each Secret a ServiceAccount lends to KServe, is filled
    by generate_credentials; no Secret of ours is committed with values."""
    calls = generated_secrets()
    referenced: dict[tuple[str, str], set[str]] = {}
    for obj in objects:
        namespace = obj["metadata"].get("namespace")
        for container in obj.get("spec", {}).get("template", {}).get("spec", {}).get("containers", []):
            for entry in container.get("env", []):
                if ref := entry.get("valueFrom", {}).get("secretKeyRef"):
                    referenced.setdefault((namespace, ref["name"]), set()).add(ref["key"])
    s3_reader = find(objects, "ServiceAccount", "model-s3-reader", "models")
    for secret in s3_reader["secrets"]:
        referenced.setdefault(("models", secret["name"]), set()).update({"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"})
    for key, fields in referenced.items():
        assert fields <= calls.get(key, set()), (
            f"Secret {key} keys {fields - calls.get(key, set())} are read but never generated"
        )
    for namespace, name in calls:
        secret = find(objects, "Secret", name, namespace)
        assert not secret.get("data") and not secret.get("stringData"), f"Secret {namespace}/{name} carries values"


def fake_kubectl_script(store: str) -> str:
    """Bash functions standing in for kubectl on the Secrets: a JSON file of {"ns/name": {key: base64}}."""
    return f"""
STORE="{store}"
kc() {{
    local ns="$2" verb="$3"
    if [[ "$verb" == get ]]; then
        local name="$5" key="${{7#jsonpath=\\{{.data.}}"; key="${{key%\\}}}}"
        python3 -c 'import json,sys; print(json.load(open(sys.argv[1])).get(sys.argv[2], {{}}).get(sys.argv[3], ""), end="")' "$STORE" "$ns/$name" "$key"
    elif [[ "$verb" == patch ]]; then
        local name="$5" file="${{9}}"
        python3 -c 'import json,sys; s=json.load(open(sys.argv[1])); s.setdefault(sys.argv[2], {{}}).update(json.load(open(sys.argv[3]))["data"]); json.dump(s, open(sys.argv[1], "w"))' "$STORE" "$ns/$name" "$file"
    else
        echo "kc $*" >>"$STORE.calls"
    fi
}}
"""


def test_credentials_are_random_generated_once_and_kept_on_a_rerun(tmp_path):
    """generate_credentials against a stand-in Secret store: every value is new random hex the first
    time; a second run changes nothing (MLflow is restarted only the first time)."""
    store = tmp_path / "secrets.json"
    store.write_text("{}")
    run_it = f'set -euo pipefail; source "{CLUSTER_SCRIPTS[0]}"; {fake_kubectl_script(store)}\nWORK_DIR="{tmp_path}"; generate_credentials'
    first = subprocess.run(["bash", "-c", run_it], capture_output=True, text=True, timeout=60)
    assert first.returncode == 0, first.stderr
    after_first = json.loads(store.read_text())
    import base64

    values = {
        f"{secret}/{key}": base64.b64decode(v).decode()
        for secret, keys in after_first.items()
        for key, v in keys.items()
    }
    passwords = [
        v
        for k, v in values.items()
        if k.rsplit("/", 1)[1]
        in (
            "MLFLOW_AUTH_ADMIN_PASSWORD",
            "MLFLOW_TRACKING_PASSWORD",
            "AWS_SECRET_ACCESS_KEY",
            "secretkey",
            "MLFLOW_FLASK_SERVER_SECRET_KEY",
        )
    ]
    assert len(passwords) == 6 and len(set(passwords)) == 6, "each secret is its own random value"
    assert all(len(p) >= 48 and all(c in "0123456789abcdef" for c in p) for p in passwords)
    assert values["kubeflow/mlflow-credentials/MLFLOW_TRACKING_USERNAME"] == cluster_up_variable("PIPELINE_MLFLOW_USER")
    assert "rollout restart deployment/mlflow" in (tmp_path / "secrets.json.calls").read_text()
    os.remove(tmp_path / "secrets.json.calls")
    second = subprocess.run(["bash", "-c", run_it], capture_output=True, text=True, timeout=60)
    assert second.returncode == 0, second.stderr
    assert json.loads(store.read_text()) == after_first
    assert not (tmp_path / "secrets.json.calls").exists(), "nothing changed, so nothing restarts"


# --- S3 identities -------------------------------------------------------------------------------


def identities() -> dict[str, dict]:
    found = {}
    for line in cluster_up_variable("S3_IDENTITIES").splitlines():
        user, namespace, secret, id_field, key_field, actions = line.split()
        found[user] = {
            "secret": (namespace, secret),
            "fields": {id_field, key_field},
            "actions": set(actions.split(",")),
        }
    return found


def test_each_s3_client_has_its_own_identity_with_the_least_it_needs(objects):
    bucket = cluster_up_variable("ARTIFACT_BUCKET")
    (container,) = find(objects, "Deployment", "mlflow", "mlflow")["spec"]["template"]["spec"]["containers"]
    root = next(a.split("=", 1)[1] for a in container["args"] if a.startswith("--default-artifact-root="))
    assert urlsplit(root).netloc == bucket
    found = identities()
    by_secret = {i["secret"]: name for name, i in found.items()}
    assert len(by_secret) == len(found) == 3, "one Secret per identity"
    mlflow_secret = {
        e["valueFrom"]["secretKeyRef"]["name"]
        for e in container["env"]
        if e["name"].startswith("AWS_") and "valueFrom" in e
    }
    (mlflow_secret,) = mlflow_secret
    mlflow_identity = found[by_secret[("mlflow", mlflow_secret)]]
    (predictor_secret,) = find(objects, "ServiceAccount", "model-s3-reader", "models")["secrets"]
    predictor_identity = found[by_secret[("models", predictor_secret["name"])]]
    pipeline_identity = found[by_secret[("kubeflow", "pipeline-s3-credentials")]]
    # Predictors: read-only, the artifact bucket only. MLflow: read-write, its bucket only.
    assert predictor_identity["actions"] == {f"Read:{bucket}", f"List:{bucket}"}
    assert mlflow_identity["actions"] == {f"Read:{bucket}", f"Write:{bucket}", f"List:{bucket}"}
    # Pipeline steps: their own key, same field names as KFP's Secret, never Admin (bucket create/delete).
    assert pipeline_identity["fields"] == {"accesskey", "secretkey"}
    assert {f"Write:{bucket}", f"Read:{bucket}"} <= pipeline_identity["actions"]
    for name, identity in found.items():
        assert all(":" in a for a in identity["actions"]), f"{name} has an action on every bucket"
        assert not [a for a in identity["actions"] if a.split(":")[0] not in ("Read", "Write", "List")], (
            f"{name}: Admin or Tagging"
        )


def test_seaweedfs_output_never_reaches_the_log():
    """s3.configure prints every identity's secret key: the function that runs it drops the output."""
    text = CLUSTER_SCRIPTS[0].read_text()
    body = text[text.index("weed_shell() {") :]
    body = body[: body.index("\n}\n")]
    assert "/usr/bin/weed shell >/dev/null 2>&1" in body and "printf '%s\\n' \"$1\" |" in body
