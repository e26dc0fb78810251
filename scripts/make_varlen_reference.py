"""Generates Tests/Fixtures/varlen_lora/: PEFT LoRA on all-MiniLM-L6-v2 for a padded batch of single
texts and sentence pairs of very different lengths (2 to ~40 tokens), so that the unpadded
(variable-length attention) path can be checked against PyTorch on real tokens and real pairs.

Writes adapter_config.json + adapter_model.safetensors (save_pretrained; lora_B and the classifier set
to seeded non-zero values so that every gradient is non-trivial) and expected.safetensors: input_ids,
token_type_ids, attention_mask [B, T] (int64), labels [B], logits [B, 3], loss [1], and grad.<name> of
every trainable parameter (PEFT's in-memory names). Train mode with dropout 0.

With --dora: Tests/Fixtures/dora/, the same batch through PEFT DoRA (LoraConfig(use_dora=True)), the
magnitude vectors also scaled away from the weight norms (so that m / ||W + s BA|| is not 1), and
merged.<module>.weight: PEFT's merge of each adapted module.
Run: <peer python> scripts/make_varlen_reference.py <all-MiniLM-L6-v2 directory> [--dora]
"""
import os, sys

import torch
from peft import LoraConfig, get_peft_model
from safetensors.torch import save_file
from transformers import BertForSequenceClassification, BertTokenizerFast

model_dir = sys.argv[1]
dora = "--dora" in sys.argv[2:]
out = os.path.join(os.path.dirname(__file__), "..", "Tests", "Fixtures", "dora" if dora else "varlen_lora")
os.makedirs(out, exist_ok=True)
torch.manual_seed(7)

examples = [  # (text, pair or None, label)
    ("Ok", None, 1),
    ("A man in a blue shirt is standing on a ladder and cleaning the windows of a tall office building downtown.",
     "A man is cleaning windows.", 0),
    ("Two dogs run through a field.", "The animals are sleeping indoors on a rainy afternoon while their owners cook.", 2),
    ("The new movie is awesome, I loved every minute of it and will see it again!", None, 2),
    ("A child plays.", "Someone is outside.", 1),
]
tok = BertTokenizerFast.from_pretrained(model_dir)
# Encode one by one (pairs and singles mixed), then pad to the longest.
rows = [tok(e[0], e[1]) if e[1] is not None else tok(e[0]) for e in examples]
T = max(len(r["input_ids"]) for r in rows)
ids = torch.zeros(len(rows), T, dtype=torch.long)
types = torch.zeros_like(ids)
mask = torch.zeros_like(ids)
for i, r in enumerate(rows):
    n = len(r["input_ids"])
    ids[i, :n] = torch.tensor(r["input_ids"])
    types[i, :n] = torch.tensor(r["token_type_ids"])
    mask[i, :n] = 1
labels = torch.tensor([e[2] for e in examples])

base = BertForSequenceClassification.from_pretrained(model_dir, num_labels=3, hidden_dropout_prob=0.0,
                                                     attention_probs_dropout_prob=0.0)
cfg = LoraConfig(r=4, lora_alpha=8, lora_dropout=0.0, target_modules=["query", "value", "intermediate.dense"],
                 task_type="SEQ_CLS", use_dora=dora)
model = get_peft_model(base, cfg)
with torch.no_grad():
    for n, p in model.named_parameters():
        if "lora_B" in n or "classifier" in n:
            p.copy_(torch.randn_like(p) * 0.05)
        if "lora_magnitude_vector" in n:
            p.mul_(1 + 0.2 * torch.randn_like(p))
model.train()
outp = model(input_ids=ids, token_type_ids=types, attention_mask=mask, labels=labels)
outp.loss.backward()
model.save_pretrained(out)
tensors = {"input_ids": ids, "token_type_ids": types, "attention_mask": mask, "labels": labels,
           "logits": outp.logits.detach().contiguous(), "loss": outp.loss.detach().reshape(1)}
for n, p in model.named_parameters():
    if p.requires_grad:
        tensors["grad." + n] = p.grad.detach().contiguous()
if dora:  # PEFT's merge of every adapted module (m / ||W + s BA|| per output row, times W + s BA)
    merged = model.merge_and_unload()
    for n, mod in merged.named_modules():
        if any(n.endswith(t) for t in cfg.target_modules) and hasattr(mod, "weight"):
            tensors["merged." + n.replace("bert.", "", 1) + ".weight"] = mod.weight.detach().contiguous()
save_file(tensors, os.path.join(out, "expected.safetensors"))
print("lengths", mask.sum(1).tolist(), "trainable", sum(1 for n in tensors if n.startswith("grad.")), "->", out)
