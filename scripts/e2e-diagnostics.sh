#!/usr/bin/env bash
# Collects what explains a failed e2e run: pods, events, KServe objects, Argo workflows, and the
# descriptions and logs of every pod that is not healthy (plus all pods of the models and mlflow
# namespaces). Never fails: a missing CRD or an unreachable API is written into the files.
#
#   scripts/e2e-diagnostics.sh [OUTPUT_DIR]    (default build/e2e/diagnostics)
set -uo pipefail

out=${1:-build/e2e/diagnostics}
mkdir -p "$out/logs"

kubectl get nodes -o wide >"$out/nodes.txt" 2>&1
kubectl get pods -A -o wide >"$out/pods.txt" 2>&1
kubectl get events -A --sort-by=.lastTimestamp >"$out/events.txt" 2>&1
kubectl get inferenceservices,servingruntimes,clusterservingruntimes -A -o yaml >"$out/kserve.yaml" 2>&1
kubectl -n kubeflow get workflows.argoproj.io -o yaml >"$out/argo-workflows.yaml" 2>&1
kubectl get deployments,services,configmaps -n kubeflow >"$out/kubeflow-objects.txt" 2>&1
# Who may reach and do what (a refused connection or a 403 starts here); Secrets by name only.
kubectl get networkpolicies -A -o yaml >"$out/network-policies.yaml" 2>&1
kubectl get roles,rolebindings,serviceaccounts,secrets -n models >"$out/models-access.txt" 2>&1
kubectl get roles,rolebindings,serviceaccounts,secrets -n kubeflow >"$out/kubeflow-access.txt" 2>&1

# namespace name phase ready-flags, one pod a line
kubectl get pods -A -o jsonpath='{range .items[*]}{.metadata.namespace}{" "}{.metadata.name}{" "}{.status.phase}{" "}{range .status.containerStatuses[*]}{.ready}{","}{end}{"\n"}{end}' \
  >"$out/pod-states.txt" 2>&1

while read -r namespace name phase ready; do
  [[ -z "${name:-}" ]] && continue
  unhealthy=false
  if [[ "$phase" == "Failed" || "$phase" == "Pending" || "$phase" == "Unknown" ]]; then
    unhealthy=true
  elif [[ "$phase" == "Running" && "${ready:-}" == *false* ]]; then
    unhealthy=true
  fi
  if [[ "$unhealthy" == true || "$namespace" == "models" || "$namespace" == "mlflow" ]]; then
    kubectl -n "$namespace" describe pod "$name" >"$out/logs/$namespace.$name.describe.txt" 2>&1
    kubectl -n "$namespace" logs "$name" --all-containers --prefix --tail=2000 >"$out/logs/$namespace.$name.log" 2>&1
    kubectl -n "$namespace" logs "$name" --all-containers --prefix --previous --tail=500 >"$out/logs/$namespace.$name.previous.log" 2>&1
  fi
done <"$out/pod-states.txt"

echo "diagnostics in $out ($(find "$out" -type f | wc -l) files)"
exit 0
