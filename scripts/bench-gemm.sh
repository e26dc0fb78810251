#!/usr/bin/env bash
# Our sgemm next to numpy's, measured in the same run on this machine.
# numpy runs with OPENBLAS_CORETYPE / OPENBLAS_L2_SIZE unset so that it picks its own best kernels.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PEER:-python3}
swift build -c release >/dev/null
SIZE=${SIZE:-1024}
ROUNDS=${ROUNDS:-3}
# Alternate the two a few times and keep each one's best: a shared VM's noise hits both alike.
ours=(); theirs=()
for _ in $(seq "$ROUNDS"); do
  ours+=("$(.build/release/rankwise doctor --json --size "$SIZE" --repeats 10)")
  theirs+=("$(env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE "$PY" scripts/peer_gemm.py "$SIZE" 10)")
done
python3 - "$(printf '%s\n' "${ours[@]}")" "$(printf '%s\n' "${theirs[@]}")" <<'PY'
import json, sys
os_ = [json.loads(l) for l in sys.argv[1].splitlines() if l.strip()]
ts = [json.loads(l) for l in sys.argv[2].splitlines() if l.strip()]
o = max(os_, key=lambda d: d['sgemm_gflops']); t = max(ts, key=lambda d: d['gflops'])
print(f"{len(os_)} alternating rounds, best of each:")
print(f"rankwise sgemm {o['sgemm_n']}^3: {o['sgemm_gflops']:7.1f} GFLOPS  ({o['vendor']} core {o['core']}, {o['threads']} threads)")
print(f"numpy    sgemm {o['sgemm_n']}^3: {t['gflops']:7.1f} GFLOPS  ({t['blas']})")
r = o['sgemm_gflops'] / t['gflops']
print(f"ratio: {r:.2f}x numpy ({'ok' if r >= 0.9 else 'BELOW the 0.9x target'})")
PY
