#!/usr/bin/env bash
# Starts `kubectl port-forward` in the background and waits until a URL through it answers 2xx.
#
#   scripts/e2e-port-forward.sh NAMESPACE TARGET LOCAL:REMOTE URL [TIMEOUT_SECONDS]
#   scripts/e2e-port-forward.sh kubeflow svc/ml-pipeline 8888:8888 http://localhost:8888/apis/v2beta1/healthz
#
# The port-forward outlives this script (later workflow steps use it); its pid and log are kept in
# $E2E_STATE_DIR (default build/e2e). A port-forward dies when the pod behind it restarts, which
# happens while a stack settles, so a dead one is started again until the deadline.
set -euo pipefail

if [[ $# -lt 4 ]]; then
  echo "usage: $0 NAMESPACE TARGET LOCAL:REMOTE URL [TIMEOUT_SECONDS]" >&2
  exit 2
fi
namespace=$1
target=$2
ports=$3
url=$4
timeout=${5:-300}
state_dir=${E2E_STATE_DIR:-build/e2e}
local_port=${ports%%:*}
log="$state_dir/port-forward-$local_port.log"
pidfile="$state_dir/port-forward-$local_port.pid"
mkdir -p "$state_dir"

start_forward() {
  kubectl -n "$namespace" port-forward "$target" "$ports" >>"$log" 2>&1 &
  echo "$!" >"$pidfile"
}

start_forward
deadline=$((SECONDS + timeout))
until curl -fsS -o /dev/null --max-time 5 "$url"; do
  if ((SECONDS >= deadline)); then
    echo "no 2xx answer from $url within ${timeout}s (port-forward -n $namespace $target $ports); its log:" >&2
    cat "$log" >&2
    exit 1
  fi
  if ! kill -0 "$(cat "$pidfile")" 2>/dev/null; then
    start_forward
  fi
  sleep 3
done
echo "$url answers (port-forward -n $namespace $target $ports, pid $(cat "$pidfile"))"
