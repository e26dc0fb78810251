"""PyTorch + PEFT side of `rankwise bench train`: training steps on one fixed batch, or on a list of
real batches of varying lengths, each padded to its longest sequence (as Hugging Face's
DataCollatorWithPadding does).

Usage: python peer_train.py MODEL_DIR IDS_JSON ITERS THREADS PEFT_METHOD   (lora, dora or adalora)
IDS_JSON: {"batch", "seq", "ids", "labels"} (one fixed batch) or {"batches": [{"ids": [[...]], "labels": [...]}]}.
Prints one JSON line: tokens_per_s (real tokens), median_s (fixed batch) or total_s, padding_fraction, peak_rss_mb.
"""
import json, sys, time

import torch
from peft import AdaLoraConfig, LoraConfig, get_peft_model
from transformers import BertForSequenceClassification

from peer_memory import peak_rss_mib

model_dir, ids_path, iters, threads, method = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), sys.argv[5]
if method not in ("lora", "dora", "adalora"):
    sys.exit(f"peer_train.py: PEFT method must be lora, dora or adalora, got {method}")
torch.set_num_threads(threads)
torch.manual_seed(0)
spec = json.load(open(ids_path))


def padded(batch):
    """(ids, mask, labels, real tokens, padded tokens) of a list of token-id lists, right-padded with 0."""
    T = max(len(r) for r in batch["ids"])
    ids = torch.zeros(len(batch["ids"]), T, dtype=torch.long)
    mask = torch.zeros_like(ids)
    for i, r in enumerate(batch["ids"]):
        ids[i, :len(r)] = torch.tensor(r)
        mask[i, :len(r)] = 1
    return ids, mask, torch.tensor(batch["labels"], dtype=torch.long), int(mask.sum()), ids.numel()


if "batches" in spec:
    batches = [padded(b) for b in spec["batches"]]
else:
    B, T = spec["batch"], spec["seq"]
    ids = torch.tensor(spec["ids"], dtype=torch.long).view(B, T)
    batches = [(ids, torch.ones_like(ids), torch.tensor(spec["labels"], dtype=torch.long), B * T, B * T)] * (iters + 2)
targets = ["query", "key", "value", "attention.output.dense", "intermediate.dense", "output.dense"]
model = BertForSequenceClassification.from_pretrained(model_dir, num_labels=3)
if method == "adalora":
    # Same as `rankwise bench train --method adalora`: init_r 8, masking at every step (deltaT 1).
    cfg = AdaLoraConfig(init_r=8, target_r=4, lora_alpha=16, lora_dropout=0.05, target_modules=targets,
                        task_type="SEQ_CLS", total_step=10 ** 6, tinit=0, tfinal=10, deltaT=1)
else:
    cfg = LoraConfig(r=8, lora_alpha=16, lora_dropout=0.05, target_modules=targets, task_type="SEQ_CLS", use_dora=(method == "dora"))
model = get_peft_model(model, cfg)
model.train()
opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-4)
times = []
step_batches = batches[:2] + batches if "batches" in spec else batches  # two warm-up steps
real = padded_tokens = 0
for i, (ids, mask, labels, n_real, n_padded) in enumerate(step_batches):
    t0 = time.perf_counter()
    out = model(input_ids=ids, attention_mask=mask, labels=labels)
    out.loss.backward()
    torch.nn.utils.clip_grad_norm_([p for p in model.parameters() if p.requires_grad], 1.0)
    opt.step()
    if method == "adalora":
        model.base_model.update_and_allocate(i)  # between step() and zero_grad(), as PEFT requires
    opt.zero_grad(set_to_none=True)
    if i >= 2:
        times.append(time.perf_counter() - t0)
        real += n_real
        padded_tokens += n_padded
peak = peak_rss_mib()
if "batches" in spec:
    total = sum(times)
    print(json.dumps({"tokens_per_s": real / total, "total_s": total, "padding_fraction": 1 - real / padded_tokens,
                      "peak_rss_mb": peak, "torch": torch.__version__}))
else:
    times.sort()
    med = times[len(times) // 2]
    print(json.dumps({"tokens_per_s": B * T / med, "median_s": med, "peak_rss_mb": peak, "torch": torch.__version__}))
