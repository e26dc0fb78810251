"""Generates Tests/Fixtures/adalora_allocation.json: PEFT's own AdaLoRA rank allocator, step by step.

A tiny BERT gets PEFT AdaLoRA on query and value (init_r 3, target_r 1, total_step 12, tinit 2,
tfinal 3, deltaT 2). At every step each lora_A / lora_E / lora_B gets deterministic values and
gradients (sin/cos formulas that the Swift test reproduces), then `update_and_allocate(step)` runs.
Recorded: E after each step (masking zeroes it) and the final rank_pattern.
Run with a Python that has torch, transformers and peft: python scripts/make_adalora_reference.py
"""
import json, math

import torch
from peft import AdaLoraConfig, get_peft_model
from transformers import BertConfig, BertForSequenceClassification

torch.manual_seed(0)
cfg = BertConfig(hidden_size=8, num_attention_heads=2, num_hidden_layers=1, intermediate_size=16, vocab_size=30,
                 max_position_embeddings=16)
model = BertForSequenceClassification(cfg)
acfg = AdaLoraConfig(init_r=3, target_r=1, lora_alpha=4, target_modules=["query", "value"], total_step=12, tinit=2,
                     tfinal=3, deltaT=2, beta1=0.85, beta2=0.85, task_type="SEQ_CLS")
model = get_peft_model(model, acfg)
modules = ["encoder.layer.0.attention.self.query", "encoder.layer.0.attention.self.value"]
kinds = {"lora_A": 0, "lora_B": 1, "lora_E": 2}


def value(step, m, k, i):
    return 0.5 * math.sin(0.37 * i + 1.3 * step + 0.9 * m + 2.1 * k)


def grad(step, m, k, i):
    return 0.3 * math.cos(0.23 * i + 0.7 * step + 1.7 * m + 0.5 * k)


params = dict(model.named_parameters())
steps = []
for step in range(12):
    for m, path in enumerate(modules):
        for kind, k in kinds.items():
            p = params[f"base_model.model.bert.{path}.{kind}.default"]
            n = p.numel()
            p.data = torch.tensor([value(step, m, k, i) for i in range(n)], dtype=torch.float32).view_as(p)
            p.grad = torch.tensor([grad(step, m, k, i) for i in range(n)], dtype=torch.float32).view_as(p)
    model.base_model.update_and_allocate(step)
    steps.append({m: params[f"base_model.model.bert.{m}.lora_E.default"].detach().view(-1).tolist() for m in modules})
pattern = {k.replace("bert.", "").replace(".lora_E.default", "").replace(".lora_E", ""): v
           for k, v in model.peft_config["default"].rank_pattern.items()}
json.dump({"modules": modules, "E_after_step": steps, "rank_pattern": pattern}, open("Tests/Fixtures/adalora_allocation.json", "w"), indent=1)
print("wrote Tests/Fixtures/adalora_allocation.json")
