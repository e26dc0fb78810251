#!/usr/bin/env bash
# End-to-end checks of the command-line tool on the real model and the real tweet corpus:
#   1. a run killed with SIGKILL mid-way and resumed ends with the same adapter as an uninterrupted run;
#   2. eval / predict / export / merge work on the result;
#   3. with RANKWISE_PEER_PYTHON (torch + transformers + peft), PEFT loads the export and the merged
#      model loads in transformers, both giving our logits.
# Prints "N passed, M failed" and exits non-zero on any failure.
set -uo pipefail
cd "$(dirname "$0")/.."
R=.build/release/rankwise
W=$(mktemp -d /tmp/rankwise-e2e.XXXXXX)
trap 'rm -rf "$W"' EXIT
pass=0; fail=0
ok()   { echo "PASS: $1"; pass=$((pass + 1)); }
bad()  { echo "FAIL: $1"; fail=$((fail + 1)); }
COMMON=(--train tweets --max-train-examples 480 --batch-size 16 --epochs 1 --dev-fraction 0.01 --test-fraction 0.01
        --checkpoint-every 4 --lr 1e-3 --seed 7)

max_diff() {  # largest |a - b| over the tensors of two safetensors files (stdlib only)
python3 - "$1" "$2" <<'PY'
import json, struct, sys
def load(p):
    b = open(p, 'rb').read(); n = struct.unpack('<Q', b[:8])[0]; h = json.loads(b[8:8 + n]); out = {}
    for k, v in h.items():
        if k == '__metadata__': continue
        s, e = v['data_offsets']; out[k] = struct.unpack('<%df' % ((e - s) // 4), b[8 + n + s:8 + n + e])
    return out
a, b = load(sys.argv[1]), load(sys.argv[2])
assert a.keys() == b.keys(), "different tensors"
print(max(abs(x - y) for k in a for x, y in zip(a[k], b[k])))
PY
}

ckpt_step() {
python3 - "$1" <<'PY'
import json, struct, sys
try:
    b = open(sys.argv[1], 'rb').read(8 + 100000); n = struct.unpack('<Q', b[:8])[0]
    print(json.loads(b[8:8 + n])['__metadata__']['step'])
except Exception:
    print(0)
PY
}

echo "== uninterrupted run (options from a YAML file; the resumed run below gives them as flags)"
cat > "$W/a.yaml" <<'YAML'
train: tweets
max_train_examples: 480
batch-size: 16
epochs: 1
dev_fraction: 0.01
test_fraction: 0.01
checkpoint_every: 4
lr: 0.001
seed: 7
YAML
$R train --config "$W/a.yaml" --output "$W/a" > "$W/a.log" 2>&1 && ok "uninterrupted training run (YAML config)" || { bad "uninterrupted training run"; tail -20 "$W/a.log"; }

# Starts a training run (output dir first, then options), kills it with SIGKILL between checkpoints once one
# at step >= 9 exists, and says so.
kill_between_checkpoints() {
  local out=$1; shift
  $R train "$@" --output "$out" > "$out.log" 2>&1 &
  local pid=$!
  for _ in $(seq 600); do
    [ -f "$out/checkpoint.safetensors" ] && [ "$(ckpt_step "$out/checkpoint.safetensors")" -ge 9 ] && break
    sleep 0.1
  done
  sleep 0.7   # land between checkpoints, in the middle of a step
  kill -9 $pid 2>/dev/null; wait $pid 2>/dev/null
  if [ -f "$out/final/adapter_model.safetensors" ]; then bad "the run finished before it could be killed"
  else ok "killed at checkpoint step $(ckpt_step "$out/checkpoint.safetensors")"; fi
}

echo "== run killed with SIGKILL, then resumed"
kill_between_checkpoints "$W/b" "${COMMON[@]}"
$R train "${COMMON[@]}" --output "$W/b" --resume > "$W/b2.log" 2>&1 && ok "resumed run finished" || { bad "resumed run"; tail -20 "$W/b2.log"; }
grep -q "resumed from" "$W/b2.log" && ok "resume reported its starting point" || bad "no resume message"
d=$(max_diff "$W/a/final/adapter_model.safetensors" "$W/b/final/adapter_model.safetensors" 2>&1)
python3 -c "import sys; sys.exit(0 if float('$d') <= 1e-6 else 1)" 2>/dev/null && ok "resumed adapter equals uninterrupted one (max |diff| $d)" || bad "resumed adapter differs (max |diff| $d)"

echo "== eval / predict / export / merge"
head -301 "$($R fetch-data tweets)" > "$W/small.csv"
$R eval --adapter "$W/a/best" --data "$W/small.csv" --label-column sentiment --json "$W/eval.json" > "$W/eval.log" 2>&1 && grep -q macro_f1 "$W/eval.json" && ok "eval" || { bad "eval"; tail "$W/eval.log"; }
printf 'I love my new self-driving car!\nNever getting in one of those.\nThe car drove to the store.\n' > "$W/texts.txt"
$R predict --adapter "$W/a/best" --input "$W/texts.txt" --output "$W/pred.jsonl" && [ "$(wc -l < "$W/pred.jsonl")" = 3 ] && ok "predict" || bad "predict"
$R export --run "$W/a" --output "$W/export" > /dev/null && [ -f "$W/export/adapter_config.json" ] && ok "export" || bad "export"
$R merge --adapter "$W/export" --output "$W/merged" > /dev/null && [ -f "$W/merged/model.safetensors" ] && ok "merge" || bad "merge"
$R predict --adapter "$W/a/best" --input /nonexistent.csv > "$W/err.log" 2>&1; [ $? -ne 0 ] && grep -q "nonexistent" "$W/err.log" && ok "a missing input file is a clear error" || bad "missing input file"

echo "== AdaLoRA: train, export with rank_pattern, merge"
$R train --train tweets --method adalora --init-r 6 --target-r 3 --delta-t 2 --max-train-examples 480 --batch-size 16 --epochs 1 \
   --dev-fraction 0.01 --test-fraction 0.01 --lr 2e-3 --output "$W/ada" > "$W/ada.log" 2>&1 && grep -q "final ranks" "$W/ada.log" \
   && grep -q '"event":"ranks"' "$W/ada/metrics.jsonl" && ok "adalora run with rank table and rank log" || { bad "adalora run"; tail -20 "$W/ada.log"; }
$R predict --adapter "$W/ada/best" --input "$W/texts.txt" --output "$W/ada-pred.jsonl" && $R merge --adapter "$W/ada/best" --output "$W/ada-merged" > /dev/null \
   && ok "adalora predict + merge" || bad "adalora predict + merge"
$R train --train tweets --method adalora --tinit 20 --tfinal 20 --max-steps 30 --output "$W/bad" > "$W/bad.log" 2>&1
[ $? -ne 0 ] && grep -q "tinit (20) + tfinal (20) must be below the total steps (30)" "$W/bad.log" && ok "impossible AdaLoRA schedule is a clear error" || { bad "bad schedule not rejected"; tail -3 "$W/bad.log"; }

echo "== a collapsed run (1e-6 learning rate, 2 steps) is said to be one: training log, results.json, report"
$R train --train tweets --method lora --max-train-examples 64 --max-eval-examples 200 --batch-size 16 --max-steps 2 --lr 1e-6 \
   --output "$W/collapsed" > "$W/collapsed.log" 2>&1 \
   && grep -q -E "warning: COLLAPSED: the model('s dev macro-F1 .* no better than always| predicts one class)" "$W/collapsed.log" \
   && grep -q -E '"kind" : "(majority_level|single_class)"' "$W/collapsed/results.json" && grep -q '"event":"collapse"' "$W/collapsed/metrics.jsonl" \
   && grep -q "Collapsed (dev)" "$W/collapsed/report.html" && ok "a collapsed run is reported as collapsed" \
   || { bad "collapsed run not reported"; tail -5 "$W/collapsed.log"; }

echo "== TsqLoRA killed with SIGKILL and resumed: the same adapter, ranks and quality scores as an uninterrupted run"
TSQ=(--train tweets --method tsqlora --max-train-examples 480 --batch-size 16 --epochs 1 --dev-fraction 0.01 --test-fraction 0.01
     --checkpoint-every 4 --lr 3e-3 --seed 7 --refresh-every 3 --pool-size 32)
$R train "${TSQ[@]}" --output "$W/t" > "$W/t.log" 2>&1 || { bad "tsqlora run"; tail -5 "$W/t.log"; }
kill_between_checkpoints "$W/t2" "${TSQ[@]}"
$R train "${TSQ[@]}" --output "$W/t2" --resume > "$W/t2b.log" 2>&1 || { bad "tsqlora resume"; tail -5 "$W/t2b.log"; }
d=$(max_diff "$W/t/final/adapter_model.safetensors" "$W/t2/final/adapter_model.safetensors" 2>&1)
[ "$d" = "0.0" ] && cmp -s "$W/t/final/quality.csv" "$W/t2/final/quality.csv" && cmp -s "$W/t/ranks.txt" "$W/t2/ranks.txt" \
  && [ "$(grep -c '"event":"quality"' "$W/t2/metrics.jsonl")" = "$(grep -c '"event":"quality"' "$W/t/metrics.jsonl")" ] \
  && ok "tsqlora resumed: adapter (max |diff| $d), quality.csv, ranks.txt and the logged refreshes equal" || bad "tsqlora resume differs (max |diff| $d)"

echo "== rankwise quality: a short fine-tune, every training example scored, lowest quality first, flipped labels found"
$R quality --train tweets --max-train-examples 600 --flip-labels 0.2 --batch-size 16 --lr 3e-3 --dev-fraction 0.01 --test-fraction 0.01 \
   --output "$W/q.csv" > "$W/q.log" 2>&1 || { bad "quality run"; tail -5 "$W/q.log"; }
python3 - "$W/q.csv" "$W/q.summary.json" <<'PY' && ok "quality: 600 rows, sorted, 120 flipped, AUROC > 0.7 ($(grep -A2 '"quality"' "$W/q.summary.json" | grep auroc | tr -d ' ,'))" || bad "quality CSV or summary"
import csv, json, sys
rows = list(csv.DictReader(open(sys.argv[1], newline='')))
need = ["row", "quality", "grad_norm", "reduction", "alignment", "probability", "label", "predicted", "loss", "flipped", "original_label", "text"]
assert all(c in rows[0] for c in need), rows[0].keys()
assert len(rows) == 600, len(rows)
q = [float(r["quality"]) for r in rows]
assert q == sorted(q), "not sorted by quality"
assert sum(r["flipped"] == "1" for r in rows) == 120
assert all(r["label"] != r["original_label"] for r in rows if r["flipped"] == "1")
assert abs(sum(float(r["probability"]) for r in rows) - 1) < 1e-6
s = json.load(open(sys.argv[2]))
assert s["detection"]["quality"]["auroc"] > 0.7, s  # 0.784 when measured
PY

echo "== rankwise report: a run's page renders in headless Chromium (not blank, no console message, nothing loaded from anywhere)"
grep -q "^report: $W/t/report.html" "$W/t.log" && ok "train wrote its report and printed the path" || bad "train did not print its report's path"
grep -q "Data quality (TsqLoRA)" "$W/t/report.html" && grep -q "Rank per module over training steps" "$W/t/report.html" \
  && grep -q "Final rank per layer and module type" "$W/t/report.html" && grep -q "Confusion matrix" "$W/t/report.html" \
  && grep -q "Warm-up sensitivity" "$W/t/report.html" && ok "the tsqlora page has curves, the rank heatmap, final ranks, sensitivity, quality, confusion" \
  || bad "report sections missing"
if command -v chromium > /dev/null; then
  out=$(python3 scripts/check_report.py "$W/t/report.html" "$W/t-report.png") && ok "run page renders: $out" || bad "run page: $out"
  printf '<!DOCTYPE html><html><body><h1>x</h1><img src="https://example.com/a.png"><script>console.error("boom")</script></body></html>' > "$W/badpage.html"
  printf '<!DOCTYPE html><html><body></body></html>' > "$W/blank.html"
  # A drawn page whose only fault is a console message, checked without the static scan: the browser step alone must catch it.
  printf '<!DOCTYPE html><html><body onload="console.error(%s)"><div style="width:900px;height:700px;background:linear-gradient(90deg,#f00,#00f)">x</div></body></html>' "'boom'" > "$W/console.html"
  console_out=$(python3 scripts/check_report.py --no-static "$W/console.html" "$W/console.png")
  if python3 scripts/check_report.py "$W/badpage.html" "$W/badpage.png" > /dev/null || python3 scripts/check_report.py "$W/blank.html" "$W/blank.png" > /dev/null \
     || ! echo "$console_out" | grep -q '"ok": false.*console: .*boom' || echo "$console_out" | grep -q "blank"; then
    bad "the page check passed a bad page ($console_out)"
  else
    ok "the page check fails a page with a script and an external image, a blank page, and (browser step alone) a page that logs to the console"
  fi
else
  bad "chromium is missing (make setup and .ci/run install Debian's chromium)"
fi

echo "== rankwise compare: a grid on two suite tasks (classification and regression), killed with SIGKILL and continued"
CMP=(--tasks trec,vader-tweets --methods lora,tsqlora --budgets 4 --seeds 1,2 --max-train-examples 160 --max-eval-examples 64
     --batch-size 16 --epochs 1 --checkpoint-every 2 --output "$W/cmp")
$R compare "${CMP[@]}" > "$W/cmp1.log" 2>&1 &
pid=$!
for _ in $(seq 1 600); do [ -f "$W/cmp/trec/tsqlora-r4-seed1/checkpoint.safetensors" ] && break; sleep 0.1; done
kill -9 "$pid" 2> /dev/null; wait "$pid" 2> /dev/null
before=$(md5sum "$W/cmp/trec/lora-r4-seed1/results.json" "$W/cmp/trec/lora-r4-seed2/results.json" 2>&1)
$R compare "${CMP[@]}" > "$W/cmp2.log" 2>&1 || { bad "compare continued"; tail -5 "$W/cmp2.log"; }
after=$(md5sum "$W/cmp/trec/lora-r4-seed1/results.json" "$W/cmp/trec/lora-r4-seed2/results.json" 2>&1)
grep -q "8 cells .*2 already done" "$W/cmp2.log" && [ "$before" = "$after" ] && grep -q '"resumed_from_step" : [1-9]' "$W/cmp/trec/tsqlora-r4-seed1/results.json" \
  && ok "compare continued: the 2 finished cells were skipped, not rerun, and the killed cell resumed from its checkpoint" \
  || { bad "compare did not continue where it stopped"; head -3 "$W/cmp2.log"; }
python3 - "$W/cmp" <<'PY' && ok "compare tables: 4 rows x 2 seeds, accuracy/macro-F1 for trec, Pearson/Spearman for the regression task, JSON = CSV = Markdown" || bad "compare tables"
import csv, json, sys
d = sys.argv[1]
j = json.load(open(d + "/results.json")); rows = j["rows"]
assert len(rows) == 4 and all(r["seeds"] == [1, 2] for r in rows), rows
for r in rows:
    keys = ["test_pearson", "test_spearman"] if r["task"] == "vader-tweets" else ["test_accuracy", "test_macro_f1"]
    assert all(k in r and r[k]["n"] == 2 for k in keys), r
    for k in ["trainable_parameters", "final_rank", "train_seconds", "tokens_per_s", "peak_rss_mib"]: assert r[k]["mean"] > 0, (k, r)
    assert r["final_rank"]["mean"] == 144, r  # 36 modules x budget 4
c = list(csv.DictReader(open(d + "/results.csv")))
assert [(x["task"], x["method"]) for x in c] == [(r["task"], r["method"]) for r in rows]
assert all(abs(float(x["test_accuracy_mean"] or x["test_pearson_mean"]) - (r.get("test_accuracy") or r["test_pearson"])["mean"]) < 1e-5 for x, r in zip(c, rows))
md = open(d + "/results.md").read()
assert "### trec" in md and "### vader-tweets" in md and "test pearson" in md
for r in rows:  # each row's first metric, as the Markdown prints it
    k = "test_pearson" if r["task"] == "vader-tweets" else "test_accuracy"
    assert f'| {r["method"]} | 4 | 2 | {r[k]["mean"]:.4f} ± {r[k]["sd"]:.4f} |' in md, (r, md)
PY
if command -v chromium > /dev/null; then
  out=$(python3 scripts/check_report.py "$W/cmp/report.html" "$W/cmp-report.png") && ok "comparison page renders: $out" || bad "comparison page: $out"
fi

echo "== every registered adaptive method: train, predict, merge; PEFT loads the export and gives our logits"
# dynamic+ranks: Dynamic LoRA's rank-moving mode (its export has per-module ranks in rank_pattern).
for spec in $($R methods | sed -n 's/^\([a-z0-9_]*\): .*/\1/p') dynamic+ranks; do
  m=${spec%%+*}
  [ "$m" = lora ] && continue   # LoRA is checked above and below
  extra=""; [ "$spec" = dynamic+ranks ] && extra="--mode ranks --update-every 2"
  # A short schedule for the methods that have one (their options as `rankwise methods` lists them).
  opts=$($R methods | awk -v m="$m:" '$1 == m {f = 1; next} /^[a-z0-9_]+: / {f = 0} f')
  sched=$(echo "$opts" | grep -q -- "--tinit " && echo "--tinit 2 --tfinal 4")
  # An input gate cannot be merged (checked below): the merge and PEFT checks run the method without it.
  sched="$sched $(echo "$opts" | grep -q -- "--gate " && echo "--gate false")"
  $R train --train tweets --method "$m" --max-train-examples 320 --batch-size 16 --epochs 1 --dev-fraction 0.01 --test-fraction 0.01 \
     --lr 3e-3 $sched $extra --output "$W/m-$spec" > "$W/m-$spec.log" 2>&1 || { bad "$spec run"; tail -5 "$W/m-$spec.log"; continue; }
  $R predict --adapter "$W/m-$spec/best" --input "$W/texts.txt" --output "$W/m-$spec-pred.jsonl" && $R merge --adapter "$W/m-$spec/best" --output "$W/m-$spec-merged" > "$W/m-$spec-merge.log" \
     && grep -q "$m adapters" "$W/m-$spec-merge.log" && ok "$spec: train, predict, merge" || bad "$spec: predict/merge"
  if [ "$spec" = dynamic+ranks ]; then
    python3 -c 'import json,sys; p=json.load(open(sys.argv[1]))["rank_pattern"]; sys.exit(0 if len(set(p.values())) > 1 and sum(p.values()) == 8 * len(p) else 1)' "$W/m-$spec/final/adapter_config.json" \
      && ok "dynamic --mode ranks moved ranks between layers (rank_pattern uneven, total kept)" || bad "dynamic --mode ranks: ranks did not move or the total changed"
  fi
  if [ -n "${RANKWISE_PEER_PYTHON:-}" ]; then
    out=$("$RANKWISE_PEER_PYTHON" scripts/check_peft.py "$($R fetch-model minilm)" "$W/m-$spec/best" "$W/m-$spec-merged" "$W/m-$spec-pred.jsonl" 2>/dev/null | tail -1)
    python3 - "$out" <<'PY' && ok "$spec: PEFT and merged logits match rankwise to 1e-4 ($out)" || bad "$spec: PEFT logits differ ($out)"
import json, sys
d = json.loads(sys.argv[1]); sys.exit(0 if d["peft_vs_rankwise"] < 1e-4 and d["merged_vs_rankwise"] < 1e-4 else 1)
PY
  fi
done
$R train --train tweets --method dynamic --max-train-examples 64 --batch-size 16 --epochs 1 --dev-fraction 0.05 --test-fraction 0.05 --output "$W/gated" > "$W/gated.log" 2>&1 \
  && [ -f "$W/gated/best/rankwise_gates.safetensors" ] && ! $R merge --adapter "$W/gated/best" --output "$W/gated-merged" > "$W/gated-merge.log" 2>&1 \
  && grep -q "input gate, which depends on each input" "$W/gated-merge.log" && [ ! -e "$W/gated-merged" ] \
  && $R export --run "$W/gated" --output "$W/gated-export" > /dev/null && cmp -s "$W/gated/best/rankwise_gates.safetensors" "$W/gated-export/rankwise_gates.safetensors" \
  && $R predict --adapter "$W/gated/best" --input "$W/texts.txt" --output "$W/gated-a.jsonl" && $R predict --adapter "$W/gated-export" --input "$W/texts.txt" --output "$W/gated-b.jsonl" \
  && cmp -s "$W/gated-a.jsonl" "$W/gated-b.jsonl" \
  && ok "a Dynamic LoRA adapter with input gates keeps them in rankwise_gates.safetensors (export copies them: same predictions), and merge refuses it, saying why" || bad "gated adapter merge/export"
$R train --train tweets --method salientlora --beta1 0.9 --output "$W/wrong" > "$W/wrong.log" 2>&1
[ $? -ne 0 ] && grep -q "an option of method adalora" "$W/wrong.log" && ok "an option of another method is an error naming it" || bad "wrong-method option accepted"

if [ -n "${RANKWISE_PEER_PYTHON:-}" ]; then
  echo "== Hugging Face PEFT and transformers load the exports"
  out=$("$RANKWISE_PEER_PYTHON" scripts/check_peft.py "$($R fetch-model minilm)" "$W/export" "$W/merged" "$W/pred.jsonl" 2>/dev/null | tail -1)
  echo "$out"
  python3 - "$out" <<'PY' && ok "PEFT and merged logits match rankwise to 1e-4" || bad "PEFT/merged logits differ"
import json, sys
d = json.loads(sys.argv[1]); sys.exit(0 if d["peft_vs_rankwise"] < 1e-4 and d["merged_vs_rankwise"] < 1e-4 else 1)
PY
else
  echo "(RANKWISE_PEER_PYTHON not set: PEFT cross-check skipped)"
fi

echo "== decoders: every registered method fine-tunes a causal LM; PEFT loads each adapter onto transformers' model"
# The tiny LlamaForCausalLM of Tests/Fixtures/hf-llama (a Hugging Face directory with tokenizer.json and a chat
# template) for every method, then SmolLM2 from its GGUF file with LoRA: losses through PEFT equal ours.
TINY=Tests/Fixtures/hf-llama/model
python3 - "$W/lm.jsonl" <<'PY'
import json, random, sys
words = "apple river stone cloud green seven window quiet paper orange little music bright winter".split()
rng = random.Random(3)
with open(sys.argv[1], "w") as f:
    for i in range(96):
        w = " ".join(rng.sample(words, rng.randint(2, 4)))
        if i % 2:  # both shapes: a prompt and its completion, and a conversation with a short system turn
            f.write(json.dumps({"prompt": "Repeat: " + w, "completion": w}) + "\n")
        else:
            f.write(json.dumps({"messages": [{"role": "system", "content": "Echo."},
                                             {"role": "user", "content": w}, {"role": "assistant", "content": w}]}) + "\n")
PY
for spec in $($R methods | sed -n 's/^\([a-z0-9_]*\): .*/\1/p'); do
  opts=$($R methods | awk -v m="$spec:" '$1 == m {f = 1; next} /^[a-z0-9_]+: / {f = 0} f')
  sched="$(echo "$opts" | grep -q -- "--gate " && echo "--gate false")"
  $R train --model "$TINY" --train "$W/lm.jsonl" --method "$spec" --batch-size 8 --epochs 2 --lr 1e-2 --max-length 128 \
     $sched --output "$W/lm-$spec" > "$W/lm-$spec.log" 2>&1 || { bad "decoder $spec run"; tail -5 "$W/lm-$spec.log"; continue; }
  grep -q "perplexity" "$W/lm-$spec.log" && grep -q '"CAUSAL_LM"' "$W/lm-$spec/best/adapter_config.json" \
    && $R eval --adapter "$W/lm-$spec/best" --data "$W/lm.jsonl" --tokens "$W/lm-$spec-tokens.jsonl" > /dev/null \
    && $R merge --adapter "$W/lm-$spec/best" --output "$W/lm-$spec-merged" > /dev/null \
    && ok "decoder $spec: train (perplexity), eval, merge" || { bad "decoder $spec: eval/merge"; tail -5 "$W/lm-$spec.log"; continue; }
  if [ -n "${RANKWISE_PEER_PYTHON:-}" ]; then
    out=$("$RANKWISE_PEER_PYTHON" scripts/check_peft_lm.py "$TINY" "$W/lm-$spec/best" "$W/lm-$spec-tokens.jsonl" 2>/dev/null | tail -1)
    merged=$("$RANKWISE_PEER_PYTHON" scripts/check_peft_lm.py "$W/lm-$spec-merged" none "$W/lm-$spec-tokens.jsonl" 2>/dev/null | tail -1)
    [[ "$out" == ok* && "$merged" == ok* ]] && ok "decoder $spec: PEFT ($out) and the merged model ($merged) give our losses" \
      || bad "decoder $spec: PEFT: $out; merged: $merged"
  fi
done
$R train --model smollm2 --train "$W/lm.jsonl" --max-train-examples 32 --dev-fraction 0.1 --test-fraction 0.1 --batch-size 8 \
   --epochs 1 --lr 1e-2 --max-length 64 --output "$W/smol" > "$W/smol.log" 2>&1 \
  && $R eval --adapter "$W/smol/best" --data "$W/lm.jsonl" --tokens "$W/smol-tokens.jsonl" > "$W/smol-eval.log" \
  && ok "SmolLM2 (GGUF): LoRA on all seven projections, $(grep -m1 perplexity "$W/smol-eval.log")" || { bad "SmolLM2 fine-tuning"; tail -5 "$W/smol.log"; }
if [ -n "${RANKWISE_PEER_PYTHON:-}" ]; then
  out=$("$RANKWISE_PEER_PYTHON" scripts/check_peft_lm.py "$($R fetch-model smollm2)" "$W/smol/best" "$W/smol-tokens.jsonl" 2>/dev/null | tail -1)
  [[ "$out" == ok* ]] && ok "SmolLM2: PEFT loads the adapter onto transformers' model of the same GGUF: $out" || bad "SmolLM2 PEFT: $out"
fi
SMOL_GGUF=$(ls "$($R fetch-model smollm2)"/*.gguf)
$R export --run "$W/smol" --output "$W/smol-export" --ollama > "$W/smol-export.log" 2>&1 \
  && grep -qx "FROM $SMOL_GGUF" "$W/smol-export/Modelfile" && grep -qx "ADAPTER ./adapter.gguf" "$W/smol-export/Modelfile" \
  && grep -q '^TEMPLATE """{{- range .Messages }}<|im_start|>' "$W/smol-export/Modelfile" \
  && ok "export --ollama: adapter.gguf and a Modelfile (FROM the base GGUF, ADAPTER, ChatML TEMPLATE, SYSTEM, stops)" \
  || { bad "export --ollama"; tail -3 "$W/smol-export.log"; }
if [ -n "${RANKWISE_PEER_PYTHON:-}" ]; then
  out=$("$RANKWISE_PEER_PYTHON" scripts/check_gguf_adapter.py "$SMOL_GGUF" "$W/smol-export/adapter.gguf" 210 2>&1 | tail -1)
  [[ "$out" == ok* ]] && ok "the gguf package reads adapter.gguf back with llama.cpp's names and shapes: $out" || bad "adapter.gguf: $out"
fi
$R merge --adapter "$W/smol/best" --output "$W/smol-merged" > /dev/null 2>&1 \
  && [ -f "$W/smol-merged/tokenizer.json" ] && [ -f "$W/smol-merged/chat_template.jinja" ] \
  && ok "merge of a GGUF-based adapter: a Hugging Face directory with the GGUF's tokenizer as tokenizer.json" \
  || bad "merge (GGUF base) to a Hugging Face directory"
if [ -n "${RANKWISE_PEER_PYTHON:-}" ]; then
  out=$("$RANKWISE_PEER_PYTHON" scripts/check_peft_lm.py "$W/smol-merged" none "$W/smol-tokens.jsonl" 2>/dev/null | tail -1)
  tok=$("$RANKWISE_PEER_PYTHON" scripts/check_merged_tokenizer.py "$W/smol-merged" "$SMOL_GGUF" 2>/dev/null | tail -1)
  [[ "$out" == ok* && "$tok" == ok* ]] && ok "transformers loads the merged SmolLM2 directory: our losses ($out); its tokenizer ($tok)" \
    || bad "merged SmolLM2 directory in transformers: $out; tokenizer: $tok"
fi
python3 -c 'import json; [print(json.dumps({"messages": [{"role": "user", "content": "Repeat: " + w}]})) for w in ["apple river stone", "seven green window", "quiet music", "paper cloud orange little"]]' > "$W/lm-prompts.jsonl"
if [ -n "${RANKWISE_LLAMACPP_PYTHON:-}" ]; then  # scripts/llamacpp-env.sh builds it (minutes): not in CI
  $R generate --model smollm2 --adapter "$W/smol-export" --input "$W/lm-prompts.jsonl" --output "$W/smol-gen.jsonl" --max-tokens 16 > /dev/null 2>&1
  out=$("$RANKWISE_LLAMACPP_PYTHON" scripts/check_llamacpp_adapter.py "$SMOL_GGUF" "$W/smol-export/adapter.gguf" "$W/lm-prompts.jsonl" "$W/smol-gen.jsonl" 16 2>&1 | tail -1)
  [[ "$out" == ok* ]] && ok "llama.cpp loads adapter.gguf and generates what Rankwise generates: $out" || bad "llama.cpp adapter: $out"
fi
$R merge --adapter "$W/smol-export" --output "$W/smol-merged.gguf" --gguf f16 > /dev/null \
  && $R generate --model "$W/smol-merged.gguf" --input "$W/lm-prompts.jsonl" --output "$W/smol-merged-gen.jsonl" --max-tokens 16 > /dev/null 2>&1 \
  && $R generate --model smollm2 --adapter "$W/smol-export" --input "$W/lm-prompts.jsonl" --output "$W/smol-adapter-gen.jsonl" --max-tokens 16 > /dev/null 2>&1 \
  && python3 -c 'import json,sys; a,b=([json.loads(l)["output"] for l in open(f)] for f in sys.argv[1:]); sys.exit(0 if a == b else 1)' "$W/smol-merged-gen.jsonl" "$W/smol-adapter-gen.jsonl" \
  && ok "merge --gguf f16: the merged SmolLM2 generates what the base model with the adapter generates" || bad "merge --gguf"
if [ -n "${RANKWISE_LLAMACPP_PYTHON:-}" ]; then
  out=$("$RANKWISE_LLAMACPP_PYTHON" scripts/check_llamacpp_adapter.py "$W/smol-merged.gguf" none "$W/lm-prompts.jsonl" "$W/smol-adapter-gen.jsonl" 16 2>&1 | tail -1)
  [[ "$out" == ok* ]] && ok "llama.cpp runs the merged F16 GGUF and generates what Rankwise generates with the adapter: $out" || bad "llama.cpp merged: $out"
else
  echo "(RANKWISE_LLAMACPP_PYTHON not set: the llama.cpp generation check is skipped)"
fi

echo "== rankwise generate: SmolLM2 from its GGUF file, chat template, greedy, JSONL in and out, bad input named"
printf '{"messages":[{"role":"user","content":"What is the capital of France?"}]}\n{"prompt":"Hi"}\n' > "$W/prompts.jsonl"
$R generate --model smollm2 --input "$W/prompts.jsonl" --output "$W/gen.jsonl" --max-tokens 12 > "$W/gen.log" 2>&1 \
  && python3 -c "import json,sys; r=[json.loads(l) for l in open(sys.argv[1])]; assert len(r)==2 and r[0]['output']=='The capital of France is Paris.' and r[0]['stop_reason']=='stop_token', r" "$W/gen.jsonl" \
  && ok "generate: greedy ChatML answer equals transformers' ($(grep -m1 -o 'generated [0-9]* at [0-9.]* tokens/s' "$W/gen.log"))" \
  || { bad "generate"; tail -5 "$W/gen.log"; cat "$W/gen.jsonl" 2>/dev/null; }
printf '{"prompt":"ok"}\n{"messages":[{"role":"user"}]}\n' > "$W/bad.jsonl"
$R generate --input "$W/bad.jsonl" > "$W/bad.log" 2>&1; grep -q "bad.jsonl:2: every message needs" "$W/bad.log" \
  && ok "generate names the file and line of a bad prompt" || { bad "bad prompt file"; tail -3 "$W/bad.log"; }

echo "== MPI (Open MPI under mpirun): the collectives checked across ranks, refusals named"
if command -v mpirun > /dev/null; then
  MPIRUN=(mpirun --allow-run-as-root --oversubscribe)
  "${MPIRUN[@]}" -np 3 $R doctor --json --size 128 --repeats 1 > "$W/mpi.json" 2> "$W/mpi.log" \
    && python3 -c 'import json,sys; d=json.load(open(sys.argv[1]))["mpi"]; assert d["size"] == 3 and all(a["correct"] for a in d["allreduce"]), d; print(d["version"])' "$W/mpi.json" > "$W/mpi.version" \
    && [ "$(grep -c '^{' "$W/mpi.json")" = 1 ] \
    && ok "doctor on 3 MPI ranks: $(cat "$W/mpi.version"), all-reduce sums correct on every rank, one rank prints" \
    || { bad "doctor under mpirun"; tail -5 "$W/mpi.log" "$W/mpi.json"; }
  "${MPIRUN[@]}" -np 2 $R methods > "$W/mpi-refused.log" 2>&1
  grep -q "rankwise methods. does not run on several MPI ranks yet" "$W/mpi-refused.log" \
    && ok "a command that does not run on several ranks says so under mpirun" || { bad "mpirun refusal"; tail -3 "$W/mpi-refused.log"; }
  "${MPIRUN[@]}" -np 2 -x RANKWISE_MPI=/nonexistent/libmpi.so $R doctor > "$W/mpi-missing.log" 2>&1
  grep -q "started as an MPI rank (OMPI_COMM_WORLD_SIZE is set) but /nonexistent/libmpi.so could not be loaded" "$W/mpi-missing.log" \
    && ok "a rank without a usable MPI library is a clear error" || { bad "missing MPI library"; tail -3 "$W/mpi-missing.log"; }
else
  bad "mpirun not found: install openmpi-bin libopenmpi-dev (scripts/setup.sh does)"
fi

echo "== another package depends on Rankwise by version (no unsafeFlags in its products)"
bash scripts/consumer-check.sh . > "$W/consumer.log" 2>&1 && ok "a package depending on Rankwise 0.0.1 builds and runs" || { bad "consumer package"; tail -5 "$W/consumer.log"; }

echo "== fuzzing every reader for a bounded time (longer: make fuzz FUZZ_SECONDS=600)"
.build/release/rankwise-fuzz --seconds "${FUZZ_SECONDS:-15}" --seed "$(date +%s)" --work "$W/fuzz-work" > "$W/fuzz.log" 2>&1 && ok "$(tail -1 "$W/fuzz.log")" || { bad "fuzzing found a crash or hang (inputs of the last target below)"; grep -m3 -E "Fatal error|fault|target|seed" "$W/fuzz.log"; tail -5 "$W/fuzz.log"
       keep=/tmp/rankwise-fuzz-crash-$(date +%s); cp -r "$W/fuzz-work" "$keep"; cp "$W/fuzz.log" "$keep/"; ls -t "$W"/fuzz-work/*/* | head -3; echo "crashing inputs kept in $keep"; }

echo "e2e: $pass passed, $fail failed"
[ "$fail" = 0 ]
