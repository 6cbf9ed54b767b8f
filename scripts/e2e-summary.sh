#!/usr/bin/env bash
# Markdown summary of an e2e run from the files earlier steps left in $E2E_STATE_DIR: the KFP run
# (and its failed tasks), the InferenceService URL, the prediction and the registered version's
# holdout metrics. Whatever is missing is said so; never fails.
#
#   scripts/e2e-summary.sh MODEL_NAME IMAGE_TAG >>"$GITHUB_STEP_SUMMARY"
set -uo pipefail

model=${1:?usage: $0 MODEL_NAME IMAGE_TAG}
tag=${2:?usage: $0 MODEL_NAME IMAGE_TAG}
state_dir=${E2E_STATE_DIR:-build/e2e}

echo "### e2e on kind (images \`$tag\`)"
echo
if [[ -f "$state_dir/submission.json" ]]; then
  python3 - "$state_dir/submission.json" <<'PY'
import json, sys
s = json.load(open(sys.argv[1]))
print(f"- KFP run `{s['run_id']}` ({s['state'] or 'submitted'}), pipeline version `{s['version_name']}`")
for task in s["failed_tasks"]:
    print(f"  - failed task `{task['name']}`: {task['message']}" + (f" (pod `{task['pod']}`)" if task["pod"] else ""))
PY
else
  echo "- the pipeline was not submitted"
fi
url=$(kubectl -n models get inferenceservice "$model" -o jsonpath='{.status.url}' 2>/dev/null)
echo "- InferenceService \`models/$model\`: ${url:-not found}"
if [[ -f "$state_dir/predict.txt" ]]; then
  echo "- $(tail -n 1 "$state_dir/predict.txt")"
fi
echo
cat "$state_dir/registry.md" 2>/dev/null || echo "no registered version checked"
exit 0
