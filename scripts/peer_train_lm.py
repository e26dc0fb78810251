"""PyTorch + PEFT side of `rankwise bench train` on a decoder: causal-LM training steps (labels = the input ids, every
token learnt) on one fixed batch, LoRA (or DoRA) r=8, alpha 16, dropout 0.05 on q/k/v/o/gate/up/down, AdamW, clipping.
The model loads as float32 LlamaForCausalLM from the same GGUF file or Hugging Face directory Rankwise loads.

Usage: python peer_train_lm.py MODEL IDS_JSON ITERS THREADS PEFT_METHOD   (MODEL: a .gguf file or a directory)
IDS_JSON: {"batch", "seq", "ids"}.
Prints one JSON line: tokens_per_s, median_s, peak_rss_mb (the whole process), step_peak_rss_mb (the peak over the
steps, measured from a reset after loading: the model's weights plus what training adds), floor_s (the frozen
products alone in torch, the float32 floor Rankwise's bench prints), torch.
"""
import json
import os
import sys
import time

import torch
from peft import LoraConfig, get_peft_model
from transformers import AutoModelForCausalLM

from peer_memory import peak_rss_mib

path, ids_path, iters, threads, method = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), sys.argv[5]
if method not in ("lora", "dora"):
    sys.exit(f"peer_train_lm.py: PEFT method must be lora or dora, got {method}")
torch.set_num_threads(threads)
torch.manual_seed(0)
spec = json.load(open(ids_path))
B, T = spec["batch"], spec["seq"]
ids = torch.tensor(spec["ids"], dtype=torch.long).view(B, T)
if os.path.isdir(path):
    model = AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32)
else:
    model = AutoModelForCausalLM.from_pretrained(os.path.dirname(path), gguf_file=os.path.basename(path),
                                                 dtype=torch.float32)
load_peak = peak_rss_mib()
targets = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]
config = LoraConfig(r=8, lora_alpha=16, lora_dropout=0.05, target_modules=targets, task_type="CAUSAL_LM",
                    use_dora=(method == "dora"))
model = get_peft_model(model, config)
model.train()
trainable = [p for p in model.parameters() if p.requires_grad]
optimizer = torch.optim.AdamW(trainable, lr=1e-4)
with open("/proc/self/clear_refs", "w") as f:  # the step peak starts from what is resident now
    f.write("5")
times = []
for step in range(iters + 2):  # two warm-up steps
    start = time.perf_counter()
    out = model(input_ids=ids, attention_mask=torch.ones_like(ids), labels=ids)
    out.loss.backward()
    torch.nn.utils.clip_grad_norm_(trainable, 1.0)
    optimizer.step()
    optimizer.zero_grad(set_to_none=True)
    if step >= 2:
        times.append(time.perf_counter() - start)
step_peak = peak_rss_mib()
times.sort()
median = times[len(times) // 2]


def floor_seconds():
    """The frozen products alone, as Rankwise's floor times them: each target linear's and the output projection's
    forward X·Wᵀ and input gradient dY·W at B·T rows (median of 3 each, after a warm-up)."""
    shapes = {}
    for name, module in model.named_modules():
        parts = name.split(".")
        frozen = parts[-1] == "lm_head" or (parts[-1] == "base_layer" and parts[-2] in targets)  # PEFT wraps targets
        if isinstance(module, torch.nn.Linear) and frozen:
            shape = tuple(module.weight.shape)
            shapes[shape] = shapes.get(shape, 0) + 1
    total = 0.0
    with torch.no_grad():
        for (outputs, inputs), count in shapes.items():
            weight = torch.randn(outputs, inputs)
            x = torch.randn(B * T, inputs)
            dy = torch.randn(B * T, outputs)
            for product in (lambda: x @ weight.T, lambda: dy @ weight):
                product()
                runs = []
                for _ in range(3):
                    start = time.perf_counter()
                    product()
                    runs.append(time.perf_counter() - start)
                total += count * sorted(runs)[1]
    return total


print(json.dumps({"tokens_per_s": B * T / median, "median_s": median, "peak_rss_mb": max(load_peak, step_peak),
                  "step_peak_rss_mb": step_peak, "floor_s": floor_seconds(), "torch": torch.__version__}))
