#!/usr/bin/env bash
# TsqLoRA's cost over ElaLoRA (the same adapters and rounds without quality sampling and the sensitivity
# warm-up): the same data, seed and schedule, alternating runs, training time only (results.json's
# train_seconds; no dev set, so no evaluation inside the loop). Also prints the share of TsqLoRA's
# training time spent scoring (metrics.jsonl's quality events). Run on a quiet machine.
#   usage: scripts/tsqlora-overhead.sh [OUT_DIR] [ROUNDS]     env: RANKWISE, EXAMPLES (4000), EXTRA (more options)
set -euo pipefail
R=${RANKWISE:-.build/release/rankwise}
OUT=${1:-runs/tsqlora-overhead}; ROUNDS=${2:-3}
COMMON="--train tweets --max-train-examples ${EXAMPLES:-4000} --dev-fraction 0 --test-fraction 0.01 --epochs 1 --r 8 --max-rank 16 --lr 5e-3 --seed 1 ${EXTRA:-}"
mkdir -p "$OUT"
for i in $(seq "$ROUNDS"); do
  for m in elalora tsqlora; do
    rm -rf "$OUT/$m-$i"
    $R train $COMMON --method $m --output "$OUT/$m-$i" > "$OUT/$m-$i.log" 2>&1
  done
done
python3 - "$OUT" "$ROUNDS" <<'PY'
import json, sys, statistics as st
out, n = sys.argv[1], int(sys.argv[2])
t = {m: [json.load(open(f"{out}/{m}-{i}/results.json"))["train_seconds"] for i in range(1, n + 1)] for m in ("elalora", "tsqlora")}
steps = json.load(open(f"{out}/tsqlora-1/results.json"))["steps"]
score = [sum(json.loads(l).get("seconds", 0) for l in open(f"{out}/tsqlora-{i}/metrics.jsonl") if '"quality"' in l) for i in range(1, n + 1)]
e, q = st.median(t["elalora"]), st.median(t["tsqlora"])
print(f"elalora: {e:.1f} s, tsqlora: {q:.1f} s (medians of {n}; {steps} steps): {1000*e/steps:.0f} vs {1000*q/steps:.0f} ms/step, overhead {100*(q/e-1):+.1f}%")
print(f"scoring: {st.median(score):.1f} s = {100*st.median(score)/q:.1f}% of tsqlora's training time (the rest of the difference: sensitivity warm-up, sampler)")
PY
