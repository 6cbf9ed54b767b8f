#!/usr/bin/env bash
# Creates a kind cluster running Kubeflow Pipelines (standalone), MLflow and KServe (Standard
# mode), builds the project's component and serving images and loads them into the node.
# Running it again on an existing cluster converges it (kubectl apply, helm upgrade --install).
#
# Credentials are generated here, once per cluster (openssl rand), and kept only in Secrets: the
# MLflow admin and the pipelines' MLflow user, and one S3 identity each for MLflow, the predictors
# and the pipeline steps (docs/security.md says what each may do). A re-run reuses them.
#
# Needs docker, kind, kubectl, helm (>= 3.8, for OCI charts), git (kubectl fetches KFP's remote
# kustomize bases with it) and openssl. Versions come from manifests/versions.env.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
# shellcheck source-path=SCRIPTDIR source=../manifests/versions.env
source "${ROOT}/manifests/versions.env"

CLUSTER_NAME="${CLUSTER_NAME:-kfp-tabular}"
IMAGE_TAG="${IMAGE_TAG:-${DEFAULT_IMAGE_TAG}}"
BUILD_IMAGES="${BUILD_IMAGES:-1}"
COMPONENT_IMAGE="ghcr.io/kfp-tabular-lifecycle/components:${IMAGE_TAG}"
SERVING_IMAGE="ghcr.io/kfp-tabular-lifecycle/serving:${IMAGE_TAG}"
CONTEXT="kind-${CLUSTER_NAME}"
KSERVE_CHARTS="oci://ghcr.io/kserve/charts"
# MLflow's artifact root (registered models included), a bucket of its own so S3 identities can be
# scoped to it; must match --default-artifact-root in manifests/mlflow/deployment.yaml.
ARTIFACT_BUCKET="mlflow"
# SeaweedFS identities: user, Secret namespace and name, its access/secret key fields, S3 actions.
# "Read:B" covers GET/HEAD of bucket B's objects, "Write:B" PUT/DELETE, "List:B" listing; no Admin.
S3_IDENTITIES=(
    "kfp-tabular-mlflow mlflow mlflow-s3-credentials AWS_ACCESS_KEY_ID AWS_SECRET_ACCESS_KEY Read:mlflow,Write:mlflow,List:mlflow"
    "kfp-tabular-models models model-s3-credentials AWS_ACCESS_KEY_ID AWS_SECRET_ACCESS_KEY Read:mlflow,List:mlflow"
    "kfp-tabular-pipelines kubeflow pipeline-s3-credentials accesskey secretkey Read:mlflow,Write:mlflow,List:mlflow,Read:mlpipeline,Write:mlpipeline,List:mlpipeline"
)
# The MLflow user pipeline steps log in as (Secret kubeflow/mlflow-credentials).
PIPELINE_MLFLOW_USER="kfp-pipelines"
# Every pod in kubeflow Ready, seen twice in a row this far apart, within this time.
PODS_TIMEOUT_SECONDS=900
PODS_POLL_SECONDS=10

usage() {
    cat <<EOF
Usage: scripts/cluster-up.sh

Creates (or converges) the kind cluster '${CLUSTER_NAME}' with Kubeflow Pipelines ${KFP_VERSION},
cert-manager ${CERT_MANAGER_VERSION}, KServe ${KSERVE_VERSION}, MLflow and the project's manifests.

Environment:
  CLUSTER_NAME   kind cluster name (default kfp-tabular; kubectl context kind-CLUSTER_NAME)
  IMAGE_TAG      tag of the project's images (default ${DEFAULT_IMAGE_TAG})
  BUILD_IMAGES   1 builds both images with docker first; 0 loads images already built (default 1)
EOF
}

log() { printf '==> %s\n' "$*" >&2; }
die() {
    printf 'cluster-up: %s\n' "$*" >&2
    exit 1
}
kc() { kubectl --context "${CONTEXT}" "$@"; }

check_inputs() {
    # A Docker tag; `latest` would defeat imagePullPolicy IfNotPresent pinning.
    if [[ ! "${IMAGE_TAG}" =~ ^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$ || "${IMAGE_TAG}" == "latest" ]]; then
        die "IMAGE_TAG='${IMAGE_TAG}' is not a usable image tag (letters, digits, _ . -; not 'latest')"
    fi
    [[ "${BUILD_IMAGES}" == 0 || "${BUILD_IMAGES}" == 1 ]] || die "BUILD_IMAGES='${BUILD_IMAGES}' must be 0 or 1"
    local tool
    for tool in docker kind kubectl helm git openssl; do
        command -v "${tool}" >/dev/null || die "${tool} is not installed (needed: docker, kind, kubectl, helm, git, openssl)"
    done
    local installed_kind
    installed_kind="$(kind version | awk '{print $2}')"
    if [[ "${installed_kind}" != "${KIND_VERSION}" ]]; then
        log "warning: kind ${installed_kind} found; the node image is pinned for kind ${KIND_VERSION}"
    fi
}

# KFP's controllers watch many files; kind nodes share the host's inotify limits, and the
# defaults end in "too many open files" crash loops.
raise_inotify_limits() {
    [[ -r /proc/sys/fs/inotify/max_user_watches ]] || return 0 # not Linux: Docker Desktop's VM sets its own
    local key minimum current
    for key in fs.inotify.max_user_watches=524288 fs.inotify.max_user_instances=512; do
        minimum="${key#*=}"
        key="${key%%=*}"
        current="$(cat "/proc/sys/${key//.//}")"
        ((current >= minimum)) && continue
        if [[ "${EUID}" -eq 0 ]]; then
            sysctl -q -w "${key}=${minimum}"
        elif sudo -n true 2>/dev/null; then
            sudo sysctl -q -w "${key}=${minimum}"
        else
            log "warning: ${key}=${current} is low; run: sudo sysctl -w ${key}=${minimum}"
            continue
        fi
        log "raised ${key} from ${current} to ${minimum}"
    done
}

build_images() {
    if [[ "${BUILD_IMAGES}" == 1 ]]; then
        log "building ${COMPONENT_IMAGE} and ${SERVING_IMAGE}"
        docker build -f "${ROOT}/components/Dockerfile" -t "${COMPONENT_IMAGE}" "${ROOT}"
        docker build -f "${ROOT}/serving/Dockerfile" -t "${SERVING_IMAGE}" "${ROOT}"
    fi
    local image
    for image in "${COMPONENT_IMAGE}" "${SERVING_IMAGE}"; do
        docker image inspect "${image}" >/dev/null 2>&1 || die "image ${image} not found in docker (BUILD_IMAGES=0 needs it built)"
    done
}

create_cluster() {
    if kind get clusters 2>/dev/null | grep -x "${CLUSTER_NAME}" >/dev/null; then
        log "kind cluster ${CLUSTER_NAME} exists; converging it"
    else
        log "creating kind cluster ${CLUSTER_NAME}"
        kind create cluster --name "${CLUSTER_NAME}" --config "${ROOT}/kind-config.yaml" --wait 180s
    fi
    kind load docker-image --name "${CLUSTER_NAME}" "${COMPONENT_IMAGE}" "${SERVING_IMAGE}"
}

# One line per pod: name, phase, Ready condition, restart counts. Empty when there is no pod.
POD_STATE_JSONPATH='{.metadata.name}{" "}{.status.phase}{" "}{.status.conditions[?(@.type=="Ready")].status}{" "}{.status.containerStatuses[*].restartCount}{"\n"}'
pod_states() {
    kc -n "$1" get pods -o jsonpath="{range .items[*]}${POD_STATE_JSONPATH}{end}"
}

# Succeeds when pod_states lists at least one Running and Ready pod and no other live pod.
# Finished pods (Succeeded, Failed: pipeline steps, evicted pods already replaced) do not count.
all_ready() {
    local states="$1" name phase ready running=0
    while read -r name phase ready _; do
        [[ -z "${name}" || "${phase}" == Succeeded || "${phase}" == Failed ]] && continue
        [[ "${phase}" == Running && "${ready}" == True ]] || return 1
        running=$((running + 1))
    done <<<"${states}"
    ((running > 0))
}

# KFP's pods crash-loop until MySQL is up, so one all-Ready moment proves little: wait until
# every pod is Ready on two polls in a row with no new restart in between.
wait_for_stable_pods() {
    local namespace="$1" deadline=$((SECONDS + PODS_TIMEOUT_SECONDS)) previous="" states
    log "waiting for every pod in ${namespace} to be Ready and stable (up to ${PODS_TIMEOUT_SECONDS}s)"
    while true; do
        states="$(pod_states "${namespace}" || true)"
        if all_ready "${states}"; then
            [[ "${states}" == "${previous}" ]] && return 0
            previous="${states}"
        else
            previous=""
        fi
        if ((SECONDS >= deadline)); then
            kc -n "${namespace}" get pods -o wide >&2 || true
            die "pods in ${namespace} not Ready and stable after ${PODS_TIMEOUT_SECONDS}s"
        fi
        sleep "${PODS_POLL_SECONDS}"
    done
}

install_kfp() {
    log "installing Kubeflow Pipelines ${KFP_VERSION}: cluster-scoped resources"
    kc apply -k "${ROOT}/manifests/kfp/cluster-scoped"
    kc wait --for condition=established --timeout=60s crd/applications.app.k8s.io
    log "installing Kubeflow Pipelines ${KFP_VERSION}: platform-agnostic"
    kc apply -k "${ROOT}/manifests/kfp/platform-agnostic"
    wait_for_stable_pods kubeflow
}

install_kserve() {
    log "installing cert-manager ${CERT_MANAGER_VERSION}"
    helm upgrade --install cert-manager cert-manager --repo https://charts.jetstack.io \
        --version "${CERT_MANAGER_VERSION}" --kube-context "${CONTEXT}" \
        --namespace cert-manager --create-namespace --set crds.enabled=true --wait --timeout 5m
    log "installing KServe ${KSERVE_VERSION} (Standard mode)"
    helm upgrade --install kserve-crd "${KSERVE_CHARTS}/kserve-crd" \
        --version "${KSERVE_VERSION}" --kube-context "${CONTEXT}" \
        --namespace kserve --create-namespace --wait --timeout 5m
    helm upgrade --install kserve-resources "${KSERVE_CHARTS}/kserve-resources" \
        --version "${KSERVE_VERSION}" --kube-context "${CONTEXT}" \
        --namespace kserve --set kserve.controller.deploymentMode=Standard --wait --timeout 10m
    helm upgrade --install kserve-runtime-configs "${KSERVE_CHARTS}/kserve-runtime-configs" \
        --version "${KSERVE_VERSION}" --kube-context "${CONTEXT}" \
        --namespace kserve --set kserve.servingruntime.enabled=true --wait --timeout 5m
}

# manifests/ with the images' tag set to IMAGE_TAG, through a throw-away overlay (kustomize
# refuses absolute paths, so it sits inside the repository, under the ignored .local/).
apply_project_manifests() {
    local overlay="${WORK_DIR}/overlay" attempt
    mkdir -p "${overlay}"
    cat >"${overlay}/kustomization.yaml" <<EOF
apiVersion: kustomize.config.k8s.io/v1beta1
kind: Kustomization
resources:
- ../../../manifests
images:
- name: ghcr.io/kfp-tabular-lifecycle/components
  newTag: "${IMAGE_TAG}"
- name: ghcr.io/kfp-tabular-lifecycle/serving
  newTag: "${IMAGE_TAG}"
EOF
    log "applying manifests/ (images tagged ${IMAGE_TAG})"
    # KServe's validating webhook may still be starting right after the Helm install.
    for attempt in 1 2 3 4 5; do
        kc apply -k "${overlay}" && return 0
        log "apply failed (attempt ${attempt}/5); retrying in 10s"
        sleep 10
    done
    die "kubectl apply -k manifests failed"
}

# A Secret's key, decoded; empty when the Secret or the key is absent.
secret_value() {
    local encoded
    encoded="$(kc -n "$1" get secret "$2" -o jsonpath="{.data.$3}" 2>/dev/null || true)"
    if [[ -n "${encoded}" ]]; then
        printf '%s' "${encoded}" | base64 -d
    fi
}

# Gives the keys of Secret NAMESPACE/NAME that have no value yet the values of the KEY=VALUE pairs;
# keys that have one keep it. Values go through a private file, never through argv or the terminal.
# Sets SECRET_CHANGED to 1 when it wrote anything.
fill_secret() {
    local namespace="$1" name="$2" pair key data="" patch="${WORK_DIR}/secret-patch.json"
    shift 2
    SECRET_CHANGED=0
    for pair in "$@"; do
        key="${pair%%=*}"
        [[ -n "$(secret_value "${namespace}" "${name}" "${key}")" ]] && continue
        data+="${data:+,}\"${key}\":\"$(printf '%s' "${pair#*=}" | base64 | tr -d '\n')\""
    done
    [[ -z "${data}" ]] && return 0
    (
        umask 077
        printf '{"data":{%s}}\n' "${data}" >"${patch}"
    )
    kc -n "${namespace}" patch secret "${name}" --type merge --patch-file "${patch}" >/dev/null
    rm -f "${patch}"
    SECRET_CHANGED=1
    log "generated credentials in Secret ${namespace}/${name}"
}

# Hex only: safe in JSON, in a weed shell command line and in HTTP basic auth.
random_hex() { openssl rand -hex "$1"; }

# Every credential the project uses, generated where missing. MLflow reads its Secrets at start,
# so it restarts when they were just written.
generate_credentials() {
    local mlflow_changed=0
    fill_secret mlflow mlflow-admin "MLFLOW_AUTH_ADMIN_USERNAME=admin" \
        "MLFLOW_AUTH_ADMIN_PASSWORD=$(random_hex 24)" "MLFLOW_FLASK_SERVER_SECRET_KEY=$(random_hex 32)"
    ((SECRET_CHANGED)) && mlflow_changed=1
    fill_secret kubeflow mlflow-credentials "MLFLOW_TRACKING_USERNAME=${PIPELINE_MLFLOW_USER}" \
        "MLFLOW_TRACKING_PASSWORD=$(random_hex 24)"
    local entry user namespace secret id_field key_field _
    for entry in "${S3_IDENTITIES[@]}"; do
        read -r user namespace secret id_field key_field _ <<<"${entry}"
        fill_secret "${namespace}" "${secret}" "${id_field}=${user}-$(random_hex 6)" "${key_field}=$(random_hex 32)"
        [[ "${namespace}" == mlflow ]] && ((SECRET_CHANGED)) && mlflow_changed=1
    done
    if ((mlflow_changed)); then
        log "restarting MLflow to pick up its credentials"
        kc -n mlflow rollout restart deployment/mlflow
    fi
}

# One `weed shell` command in the SeaweedFS pod, given on stdin (so keys stay out of argv). Its
# output is dropped: s3.configure prints the whole identity file, every secret key included.
weed_shell() {
    printf '%s\n' "$1" | kc -n kubeflow exec -i deploy/seaweedfs -- /usr/bin/weed shell >/dev/null 2>&1
}

# The artifact bucket and the three identities, as KFP's own SeaweedFS set-up makes its admin
# (s3.configure ... -apply; the S3 gateway reloads identities when the filer's copy changes).
configure_s3_store() {
    log "S3 store: bucket ${ARTIFACT_BUCKET}, identities for MLflow, predictors and pipeline steps"
    weed_shell "s3.bucket.create --name ${ARTIFACT_BUCKET}" || true # fails when it exists
    kc -n kubeflow exec deploy/seaweedfs -- /bin/sh -c 'echo s3.bucket.list | /usr/bin/weed shell' 2>/dev/null |
        grep -qw "${ARTIFACT_BUCKET}" || die "SeaweedFS has no bucket ${ARTIFACT_BUCKET} after creating it"
    local entry user namespace secret id_field key_field actions access key
    for entry in "${S3_IDENTITIES[@]}"; do
        read -r user namespace secret id_field key_field actions <<<"${entry}"
        access="$(secret_value "${namespace}" "${secret}" "${id_field}")"
        key="$(secret_value "${namespace}" "${secret}" "${key_field}")"
        [[ -n "${access}" && -n "${key}" ]] || die "Secret ${namespace}/${secret} has no ${id_field}/${key_field}"
        weed_shell "s3.configure -user ${user} -access_key ${access} -secret_key ${key} -actions ${actions} -apply" ||
            die "SeaweedFS refused identity ${user} (s3.configure; output withheld: it lists secret keys)"
    done
}

# Python run in the MLflow pod: creates (or resets the password of) the pipelines' MLflow user as
# the admin, whose credentials are in the pod's environment. Reads {"username", "password"} on stdin.
MLFLOW_USER_SCRIPT='
import json, os, sys
from mlflow.exceptions import MlflowException
from mlflow.server import get_app_client
user = json.load(sys.stdin)
os.environ["MLFLOW_TRACKING_USERNAME"] = os.environ["MLFLOW_AUTH_ADMIN_USERNAME"]
os.environ["MLFLOW_TRACKING_PASSWORD"] = os.environ["MLFLOW_AUTH_ADMIN_PASSWORD"]
client = get_app_client("basic-auth", tracking_uri=os.environ.get("MLFLOW_URL", "http://127.0.0.1:5000"))
try:
    client.get_user(user["username"])
except MlflowException as error:
    if error.error_code != "RESOURCE_DOES_NOT_EXIST":
        raise
    client.create_user(user["username"], user["password"])
    print("created MLflow user", user["username"])
else:
    client.update_user_password(user["username"], user["password"])
    print("MLflow user", user["username"], "exists; password set from its Secret")
'

create_mlflow_user() {
    local username password
    username="$(secret_value kubeflow mlflow-credentials MLFLOW_TRACKING_USERNAME)"
    password="$(secret_value kubeflow mlflow-credentials MLFLOW_TRACKING_PASSWORD)"
    [[ -n "${username}" && -n "${password}" ]] || die "Secret kubeflow/mlflow-credentials has no user or password"
    printf '{"username":"%s","password":"%s"}\n' "${username}" "${password}" |
        kc -n mlflow exec -i deploy/mlflow -- python -c "${MLFLOW_USER_SCRIPT}" >&2 ||
        die "could not create the MLflow user ${username}"
}

# MLflow's S3 identity against the store, from the MLflow pod (its network policy and its keys):
# its bucket answers, KFP's bucket refuses. Identities reach the S3 gateway within seconds.
MLFLOW_S3_CHECK_SCRIPT='
import os, sys, boto3, botocore.exceptions
s3 = boto3.client("s3", endpoint_url=os.environ["MLFLOW_S3_ENDPOINT_URL"])
def status(bucket):
    try:
        s3.head_bucket(Bucket=bucket)
        return 200
    except botocore.exceptions.ClientError as error:
        return int(error.response["ResponseMetadata"]["HTTPStatusCode"])
own, other = status(sys.argv[1]), status("mlpipeline")
print(f"HEAD {sys.argv[1]}: {own}, HEAD mlpipeline: {other}")
sys.exit(0 if own == 200 and other == 403 else 1)
'

check_mlflow_s3_access() {
    local attempt
    for attempt in 1 2 3 4 5 6; do
        kc -n mlflow exec deploy/mlflow -- python -c "${MLFLOW_S3_CHECK_SCRIPT}" "${ARTIFACT_BUCKET}" >&2 && return 0
        log "MLflow's S3 identity not in effect yet (attempt ${attempt}/6); retrying in 5s"
        sleep 5
    done
    die "MLflow's S3 identity cannot read bucket ${ARTIFACT_BUCKET}, or can read mlpipeline"
}

wait_for_services() {
    log "waiting for MLflow and the KServe controller"
    kc -n mlflow rollout status deployment/mlflow --timeout=300s
    kc -n kserve rollout status deployment/kserve-controller-manager --timeout=300s
}

main() {
    if [[ $# -gt 0 ]]; then
        usage
        [[ "$1" == -h || "$1" == --help ]] && exit 0
        exit 2
    fi
    check_inputs
    mkdir -p "${ROOT}/.local"
    WORK_DIR="$(mktemp -d "${ROOT}/.local/cluster-up.XXXXXX")"
    trap 'rm -rf "${WORK_DIR}"' EXIT
    raise_inotify_limits
    build_images
    create_cluster
    install_kfp
    install_kserve
    apply_project_manifests
    generate_credentials
    configure_s3_store
    wait_for_services
    create_mlflow_user
    check_mlflow_s3_access
    cat <<EOF

Cluster ${CLUSTER_NAME} is up (kubectl context ${CONTEXT}), images tagged ${IMAGE_TAG}.
  kubectl -n kubeflow port-forward svc/ml-pipeline 8888:8888    # kfp.Client(host="http://localhost:8888")
  kubectl -n kubeflow port-forward svc/ml-pipeline-ui 8080:80   # KFP UI  http://localhost:8080
  kubectl -n mlflow port-forward svc/mlflow 5000:5000           # MLflow  http://localhost:5000
MLflow asks for a user: the pipelines' one is in Secret kubeflow/mlflow-credentials, the admin in mlflow/mlflow-admin:
  kubectl -n kubeflow get secret mlflow-credentials -o jsonpath='{.data.MLFLOW_TRACKING_PASSWORD}' | base64 -d
Compile for these images: python compile.py --image ${COMPONENT_IMAGE}
EOF
}

# Sourcing the script (as its tests do) defines the functions without running anything.
if [[ "${BASH_SOURCE[0]}" == "$0" ]]; then
    main "$@"
fi
