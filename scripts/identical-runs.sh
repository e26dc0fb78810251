#!/bin/bash
# Fixed-seed runs of every registered method with two binaries, to check that a refactor leaves adapters
# bit-identical:
#   bash scripts/identical-runs.sh OLD_BINARY NEW_BINARY OUTPUT_ROOT
# runs each method once per binary (OUTPUT_ROOT/old/NAME, OUTPUT_ROOT/new/NAME; about 20 s a run) and
# compares {best,final}/adapter_model.safetensors byte for byte; exits 1 when any differs or a run fails.
# KEEP_OLD=1 keeps the old binary's finished runs under OUTPUT_ROOT/old and runs only the new one again.
# Both binaries run with the same thread count (RANKWISE_THREADS, default 2): BLAS sums depend on it.
# Later binaries changed defaults: to reproduce a binary older than the --split-seed option pass
# EXTRA="--split-seed 11"; older than unpadded random batches (7a6b583), add "--sampler bucketed --padded".
# Since the SVD methods start as LoRA does (--adapter-init zero-b), give a later binary SVD_EXTRA="--adapter-init peft"
# to compare it with an earlier one.
set -u
OLD=$1; NEW=$2; OUT=$3
export RANKWISE_THREADS=${RANKWISE_THREADS:-2}
COMMON=(${EXTRA:-} --train tweets --max-train-examples 480 --batch-size 16 --epochs 1 --dev-fraction 0.01
        --test-fraction 0.01 --seed 11 --checkpoint-every 200 --eval-every 0)
# name | options (each run prunes, grows or moves ranks within its 30 steps)
RUNS=(
  "lora|--method lora --r 8 --alpha 16 --lr 1e-3"
  "dora|--method dora --r 4 --lr 1e-3"
  "sora|--method sora --r 4 --lr 1e-3"
  "dynamic|--method dynamic --r 4 --lr 1e-3"
  "dynamic-ranks|--method dynamic --mode ranks --r 4 --max-rank 8 --lr 1e-3"
  "adalora|--method adalora --init-r 6 --target-r 3 --delta-t 2 --tinit 3 --tfinal 6 --orth-reg-weight 0.5 --beta1 0.85 --beta2 0.85 --lr 3e-3 ${SVD_EXTRA:-}"
  "salientlora|--method salientlora --init-r 6 --target-r 3 --tinit 3 --tfinal 6 --ti 4 --tf 10 --interval 1 --orth-reg-weight 0.1 --lr 3e-3 ${SVD_EXTRA:-}"
  "elalora|--method elalora --r 4 --max-rank 8 --lr 3e-3 ${SVD_EXTRA:-}"
  "tsqlora|--method tsqlora --r 4 --max-rank 8 --lr 3e-3 ${SVD_EXTRA:-}"
)
status=0
for run in "${RUNS[@]}"; do
  name=${run%%|*}; options=${run#*|}
  for side in old new; do
    binary=$OLD; [ $side = new ] && binary=$NEW
    # KEEP_OLD=1 reuses the old binary's finished runs (a refactor checked again after more changes)
    if [ $side = old ] && [ "${KEEP_OLD:-0}" = 1 ] && [ -f "$OUT/old/$name/final/adapter_model.safetensors" ]; then
      continue
    fi
    rm -rf "$OUT/$side/$name"; mkdir -p "$OUT/$side"
    if ! $binary train "${COMMON[@]}" $options --output "$OUT/$side/$name" > "$OUT/$side/$name.log" 2>&1; then
      echo "$name: the $side binary failed (see $OUT/$side/$name.log)"; status=1; continue 2
    fi
  done
  verdict=identical
  for file in best/adapter_model.safetensors final/adapter_model.safetensors; do
    cmp -s "$OUT/old/$name/$file" "$OUT/new/$name/$file" || verdict="DIFFERENT ($file)"
  done
  [ "$verdict" = identical ] || status=1
  echo "$name: $verdict"
done
exit $status
