#!/bin/bash
# Fixed-seed LoRA / AdaLoRA / SalientLoRA runs, to check that a refactor leaves adapters bit-identical:
#   bash scripts/identical-runs.sh OLD_BINARY /tmp/old-runs; bash scripts/identical-runs.sh NEW_BINARY /tmp/new-runs
# then compare {lora,adalora,salientlora}/{best,final}/adapter_model.safetensors byte for byte (cmp).
# Fixed-seed runs for the bit-identical check: $1 = binary, $2 = output root
# Later binaries changed defaults: to reproduce a binary older than the --split-seed option pass
# EXTRA="--split-seed 11"; older than unpadded random batches (7a6b583), add "--sampler bucketed --padded".
# Measured: with "--sampler bucketed --padded" the unpadded-path commit reproduces 44bbea7 byte for byte.
# Since the SVD methods start as LoRA does (--adapter-init zero-b), give a later binary SVD_EXTRA="--adapter-init peft"
# to compare it with an earlier one (the AdaLoRA and SalientLoRA runs below give every schedule step explicitly).
R=$1; O=$2
mkdir -p "$O"
C=(${EXTRA:-} --train tweets --max-train-examples 480 --batch-size 16 --epochs 1 --dev-fraction 0.01 --test-fraction 0.01 --seed 11 --checkpoint-every 200 --eval-every 0)
$R train "${C[@]}" --method lora --r 8 --alpha 16 --lr 1e-3 --output $O/lora > $O/lora.log 2>&1
$R train "${C[@]}" --method adalora --init-r 6 --target-r 3 --delta-t 2 --tinit 3 --tfinal 6 --orth-reg-weight 0.5 --beta1 0.85 --beta2 0.85 --lr 3e-3 ${SVD_EXTRA:-} --output $O/adalora > $O/adalora.log 2>&1
$R train "${C[@]}" --method salientlora --init-r 6 --target-r 3 --tinit 3 --tfinal 6 --ti 4 --tf 10 --interval 1 --orth-reg-weight 0.1 --lr 3e-3 ${SVD_EXTRA:-} --output $O/salientlora > $O/salientlora.log 2>&1
echo done
