#!/usr/bin/env bash
# Methods side by side on the tweet split, several seeds each, at the same final rank budget
# (--r 8 = average final rank per module for every method). Prints mean and spread (sample std)
# of test accuracy and macro-F1 and the wall time per run (a wall time is only worth something when nothing else
# ran on the machine). Until `rankwise compare` exists (issue #12).
#   usage: scripts/compare-methods.sh [OUT_DIR] [SEEDS...]
#   env: RANKWISE (binary), EXAMPLES (8000; "all" for the whole training split), METHODS, EXTRA (more options for every run,
#        e.g. EXTRA="--flip-labels 0.2")
set -euo pipefail
R=${RANKWISE:-.build/release/rankwise}
OUT=${1:-runs/compare}; shift || true
SEEDS=${*:-"1 2 3"}
N=${EXAMPLES:-8000}
COMMON="--train tweets --epochs 1 --batch-size 32 --r 8 ${EXTRA:-}"
if [ "$N" != all ]; then COMMON="$COMMON --max-train-examples $N"; fi
declare -A ARGS=(
  [lora]="--method lora --alpha 16 --lr 1e-3"
  [adalora]="--method adalora --init-r 12 --lr 5e-3 --orth-reg-weight 0.1"
  [salientlora]="--method salientlora --init-r 12 --lr 5e-3 --orth-reg-weight 0.1"
  [elalora]="--method elalora --max-rank 16 --lr 5e-3"
  [tsqlora]="--method tsqlora --max-rank 16 --lr 5e-3"
  # ablations: ranks by layer sensitivity; uniform batches (floor 1: sensitivity ranks only)
  [tsqlora_layer]="--method tsqlora --max-rank 16 --lr 5e-3 --sensitivity-group layer"
  [tsqlora_uniform]="--method tsqlora --max-rank 16 --lr 5e-3 --floor 1"
)
METHODS=${METHODS:-"lora adalora salientlora elalora"}
mkdir -p "$OUT"
for m in $METHODS; do for s in $SEEDS; do
  d="$OUT/$m-seed$s"
  if [ -f "$d/results.json" ]; then continue; fi
  start=$(date +%s.%N)
  $R train $COMMON ${ARGS[$m]} --seed "$s" --output "$d" > "$d.log" 2>&1
  echo "$(date +%s.%N) - $start" | bc > "$d.seconds"
  echo "$m seed $s: $(grep -o '"test_macro_f1" : [0-9.]*' "$d/results.json")"
done; done
python3 - "$OUT" $METHODS <<'PY'
import json, statistics as st, sys, os, glob
out, methods = sys.argv[1], sys.argv[2:]
print(f"| method | test accuracy | test macro-F1 | seconds/run | runs |\n| --- | --- | --- | --- | --- |")
for m in methods:
    rs = [json.load(open(f)) for f in sorted(glob.glob(f"{out}/{m}-seed*/results.json"))]
    secs = [float(open(f).read()) for f in sorted(glob.glob(f"{out}/{m}-seed*.seconds"))]
    f = lambda k: f"{st.mean(r[k] for r in rs):.4f} ± {st.stdev(r[k] for r in rs):.4f}" if len(rs) > 1 else f"{rs[0][k]:.4f}"
    print(f"| {m} | {f('test_accuracy')} | {f('test_macro_f1')} | {st.mean(secs):.0f} | {len(rs)} |")
PY
