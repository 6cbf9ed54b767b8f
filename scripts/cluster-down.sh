#!/usr/bin/env bash
# Deletes the kind cluster made by scripts/cluster-up.sh, with everything in it (the model
# registry and the S3 store included). The images built on the host stay in docker.
set -euo pipefail

CLUSTER_NAME="${CLUSTER_NAME:-kfp-tabular}"

if [[ $# -gt 0 ]]; then
    printf 'Usage: scripts/cluster-down.sh   (CLUSTER_NAME=%s)\n' "${CLUSTER_NAME}"
    [[ "$1" == -h || "$1" == --help ]] && exit 0
    exit 2
fi
command -v kind >/dev/null || {
    printf 'cluster-down: kind is not installed\n' >&2
    exit 1
}
if kind get clusters 2>/dev/null | grep -x "${CLUSTER_NAME}" >/dev/null; then
    kind delete cluster --name "${CLUSTER_NAME}"
else
    printf 'cluster-down: no kind cluster named %s\n' "${CLUSTER_NAME}" >&2
fi
