#!/usr/bin/env bash
# Creates a kind cluster running Kubeflow Pipelines (standalone), MLflow and KServe (Standard
# mode), builds the project's component and serving images and loads them into the node.
# Running it again on an existing cluster converges it (kubectl apply, helm upgrade --install).
#
# Needs docker, kind, kubectl, helm (>= 3.8, for OCI charts) and git (kubectl fetches KFP's
# remote kustomize bases with it). Versions come from manifests/versions.env.
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
    for tool in docker kind kubectl helm git; do
        command -v "${tool}" >/dev/null || die "${tool} is not installed (needed: docker, kind, kubectl, helm, git)"
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

# The S3 keys of KFP's SeaweedFS go into the Secrets of MLflow and of KServe's model download.
# They stay base64 as read and pass through a private file, never through argv or the terminal.
copy_s3_credentials() {
    local access secret patch="${WORK_DIR}/s3-credentials.json" result
    access="$(kc -n kubeflow get secret mlpipeline-minio-artifact -o jsonpath='{.data.accesskey}')"
    secret="$(kc -n kubeflow get secret mlpipeline-minio-artifact -o jsonpath='{.data.secretkey}')"
    [[ -n "${access}" && -n "${secret}" ]] || die "Secret kubeflow/mlpipeline-minio-artifact has no accesskey/secretkey"
    (
        umask 077
        printf '{"data":{"AWS_ACCESS_KEY_ID":"%s","AWS_SECRET_ACCESS_KEY":"%s"}}\n' "${access}" "${secret}" >"${patch}"
    )
    kc -n models patch secret model-s3-credentials --type merge --patch-file "${patch}" >/dev/null
    result="$(kc -n mlflow patch secret mlflow-s3-credentials --type merge --patch-file "${patch}")"
    rm -f "${patch}"
    # Environment variables from a Secret are read at container start.
    if [[ "${result}" != *"(no change)"* ]]; then
        log "S3 credentials copied; restarting MLflow to pick them up"
        kc -n mlflow rollout restart deployment/mlflow
    fi
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
    copy_s3_credentials
    wait_for_services
    cat <<EOF

Cluster ${CLUSTER_NAME} is up (kubectl context ${CONTEXT}), images tagged ${IMAGE_TAG}.
  kubectl -n kubeflow port-forward svc/ml-pipeline 8888:8888    # kfp.Client(host="http://localhost:8888")
  kubectl -n kubeflow port-forward svc/ml-pipeline-ui 8080:80   # KFP UI  http://localhost:8080
  kubectl -n mlflow port-forward svc/mlflow 5000:5000           # MLflow  http://localhost:5000
Compile for these images: python compile.py --image ${COMPONENT_IMAGE}
EOF
}

# Sourcing the script (as its tests do) defines the functions without running anything.
if [[ "${BASH_SOURCE[0]}" == "$0" ]]; then
    main "$@"
fi
