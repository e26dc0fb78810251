#!/usr/bin/env python3
"""The closing table of a generation grid: for the base model and each method, test ROUGE-1/2/L (F, stemmed) and
test perplexity as mean ± sd over seeds, from finished `rankwise compare` cells and a base `rankwise eval --json`
run; then a few examples with the reference, the base model's reply and a fine-tuned run's reply.
  usage: scripts/generation-table.py CELLS_DIR BASE_DIR DATA_JSONL [--samples N] [--after METHOD]
  (CELLS_DIR holds TASK/METHOD-rR-lrLR-seedS/results.json; BASE_DIR holds results.json and test_generations.jsonl)
"""
import argparse
import json
import os
import re
import statistics

parser = argparse.ArgumentParser()
parser.add_argument("cells")
parser.add_argument("base")
parser.add_argument("data")
parser.add_argument("--samples", type=int, default=3)
parser.add_argument("--after", default="lora")
args = parser.parse_args()
metrics = ["test_rouge1", "test_rouge2", "test_rougeL", "test_perplexity"]


def show(values):
    if not values:
        return "-"
    if len(values) == 1:
        return f"{values[0]:.4f}"
    return f"{statistics.mean(values):.4f} ± {statistics.stdev(values):.4f}"


runs = {}
for task in sorted(os.listdir(args.cells)):
    folder = os.path.join(args.cells, task)
    if not os.path.isdir(folder):
        continue
    for cell in sorted(os.listdir(folder)):
        match = re.fullmatch(r"(.+)-r(\d+)-lr(.+?)-seed(\d+)", cell)
        path = os.path.join(folder, cell, "results.json")
        if match and os.path.exists(path):
            runs.setdefault(match.group(1), []).append((int(match.group(4)), json.load(open(path)), cell))
base = json.load(open(os.path.join(args.base, "results.json")))
base_metrics = base.get("metrics", base)
print("| model | seeds | ROUGE-1 | ROUGE-2 | ROUGE-L | test perplexity |")
print("| --- | --- | --- | --- | --- | --- |")
print("| base (SmolLM2-135M-Instruct) | - | " + " | ".join(
    show([base_metrics[m.replace("test_", "")]] if m.replace("test_", "") in base_metrics else
         [base_metrics[m]] if m in base_metrics else []) for m in metrics) + " |")
for method, cells in sorted(runs.items()):
    row = [show([cell[1].get(m) for cell in cells if cell[1].get(m) is not None]) for m in metrics]
    print(f"| {method} | {len(cells)} | " + " | ".join(row) + " |")

lines = open(args.data).read().splitlines()
before = {row["line"]: row for row in map(json.loads, open(os.path.join(args.base, "test_generations.jsonl")))}
after_cells = sorted(runs.get(args.after, []))
if not after_cells:
    raise SystemExit(f"no finished {args.after} cell")
after_path = os.path.join(args.cells, "aclsum", after_cells[0][2], "test_generations.jsonl")
after = {row["line"]: row for row in map(json.loads, open(after_path))}
shared = sorted(set(before) & set(after))
step = max(1, len(shared) // args.samples)
for line in shared[::step][: args.samples]:
    example = json.loads(lines[line - 1])
    title = example["prompt"].split("\n")[0]
    print(f"\n**line {line}** ({title})\n")
    print(f"- reference: {after[line]['reference']}")
    print(f"- base (ROUGE-L {before[line]['rougeL']:.3f}): {before[line]['prediction']}")
    print(f"- {args.after} seed {after_cells[0][0]} (ROUGE-L {after[line]['rougeL']:.3f}): {after[line]['prediction']}")
