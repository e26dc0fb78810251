"""Checks Rankwise's exports with the real Hugging Face stack (transformers + PEFT).

Usage: python check_peft.py BASE_MODEL_DIR ADAPTER_DIR MERGED_DIR PREDICTIONS_JSONL
Loads BertForSequenceClassification + PeftModel.from_pretrained(ADAPTER_DIR), and the merged
directory with AutoModelForSequenceClassification, runs the texts of PREDICTIONS_JSONL (written by
`rankwise predict`, with logits) and prints one JSON line with the largest absolute logit differences.
"""
import json, sys

import torch
from peft import PeftModel
from transformers import AutoModelForSequenceClassification, AutoTokenizer, BertForSequenceClassification

base, adapter, merged, preds = sys.argv[1:5]
rows = [json.loads(l) for l in open(preds)]
texts = [r["text"] for r in rows]
ours = torch.tensor([r["logits"] for r in rows])
n = ours.shape[1]
tok = AutoTokenizer.from_pretrained(base)
batch = tok(texts, padding=True, truncation=True, max_length=128, return_tensors="pt")
m = BertForSequenceClassification.from_pretrained(base, num_labels=n)
pm = PeftModel.from_pretrained(m, adapter).eval()
with torch.no_grad():
    peft_logits = pm(**batch).logits
mm = AutoModelForSequenceClassification.from_pretrained(merged).eval()
with torch.no_grad():
    merged_logits = mm(**batch).logits
print(json.dumps({
    "examples": len(texts),
    "peft_vs_rankwise": float((peft_logits - ours).abs().max()),
    "merged_vs_rankwise": float((merged_logits - ours).abs().max()),
    "merged_vs_peft": float((merged_logits - peft_logits).abs().max()),
    "merged_labels": mm.config.id2label,
}))
