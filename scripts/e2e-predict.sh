#!/usr/bin/env bash
# Sends the committed Ames rows to a served model over V2 and V1 and checks the answers:
# one finite positive price each, the same number from both protocols.
#
#   scripts/e2e-predict.sh BASE_URL MODEL_NAME     e.g. http://localhost:8080 ames-house-prices
set -euo pipefail

if [[ $# -ne 2 ]]; then
  echo "usage: $0 BASE_URL MODEL_NAME" >&2
  exit 2
fi
base=${1%/}
model=$2
examples="$(dirname "$0")/../serving/examples"

v2=$(curl -fsS --max-time 60 -H 'Content-Type: application/json' --data "@$examples/ames-v2.json" "$base/v2/models/$model/infer")
v1=$(curl -fsS --max-time 60 -H 'Content-Type: application/json' --data "@$examples/ames-v1.json" "$base/v1/models/$model:predict")
echo "V2 $v2"
echo "V1 $v1"

python3 - "$v2" "$v1" <<'PY'
import json, math, sys
v2, v1 = (json.loads(text) for text in sys.argv[1:3])
price_v2 = v2["outputs"][0]["data"][0]
price_v1 = v1["predictions"][0]
assert math.isfinite(price_v2) and price_v2 > 0, f"V2 prediction {price_v2!r} is not a positive price"
assert math.isclose(price_v1, price_v2, rel_tol=1e-9), f"V1 {price_v1!r} and V2 {price_v2!r} differ"
print(f"predicted sale price {price_v2:,.0f} USD (V1 and V2 agree)")
PY
