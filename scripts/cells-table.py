#!/usr/bin/env python3
"""A table straight from finished `rankwise compare --lrs` cells spread over several output directories (a grid run in
parallel halves): per task, method and rate the dev and test means ± sd over seeds, the rate chosen on dev, and
runs that collapsed.
  usage: scripts/cells-table.py METRIC OUTPUT [OUTPUT ...]     (METRIC: macro_f1, pearson, rougeL, perplexity, ...)
"""
import json
import os
import re
import statistics
import sys

metric, outputs = sys.argv[1], sys.argv[2:]
lower_is_better = metric in ("perplexity", "loss", "mse")
cells = {}
for output in outputs:
    for task in sorted(os.listdir(output)):
        if not os.path.isdir(os.path.join(output, task)):
            continue
        for cell in sorted(os.listdir(os.path.join(output, task))):
            match = re.fullmatch(r"(.+)-r(\d+)-lr(.+?)-seed(\d+)", cell)
            path = os.path.join(output, task, cell, "results.json")
            if not match or not os.path.exists(path):
                continue
            result = json.load(open(path))
            values = result.get("metrics", result)
            method, budget, lr, seed = match.groups()
            collapsed = bool(result.get("collapse") or result.get("collapsed"))
            runs = cells.setdefault((task, method, budget, lr), [])
            if int(seed) not in [run[0] for run in runs]:  # a cell copied into two outputs counts once
                runs.append((int(seed), values.get("dev_" + metric), values.get("test_" + metric), collapsed))


def show(mean, sd):
    return "-" if mean is None else f"{mean:.4f} ± {sd:.4f}"


def stat(values):
    values = [v for v in values if v is not None]
    if not values:
        return None, None
    return statistics.mean(values), (statistics.stdev(values) if len(values) > 1 else 0.0)


best = {}
print(f"| task | method | budget | lr | seeds | dev {metric} | test {metric} | collapsed |")
print("| --- | --- | --- | --- | --- | --- | --- | --- |")
for key in sorted(cells):
    runs = sorted(cells[key])
    dev, dev_sd = stat([r[1] for r in runs])
    test, test_sd = stat([r[2] for r in runs])
    collapsed = sum(r[3] for r in runs)
    group = key[:3]
    better = dev is not None and (group not in best or (dev < best[group][1] if lower_is_better else dev > best[group][1]))
    if better and len(runs) >= 3:
        best[group] = (key[3], dev, test, test_sd, collapsed)
    print(f"| {key[0]} | {key[1]} | {key[2]} | {key[3]} | {len(runs)} | {show(dev, dev_sd)} | "
          f"{show(test, test_sd)} | {collapsed or ''} |")
print(f"\nChosen on dev (3 seeds or more; a metric without dev values, such as ROUGE, chooses nothing):\n\n| task | method | budget | lr | test {metric} | collapsed |")
print("| --- | --- | --- | --- | --- | --- |")
for (task, method, budget), (lr, dev, test, test_sd, collapsed) in sorted(best.items()):
    print(f"| {task} | {method} | {budget} | {lr} | {show(test, test_sd)} | {collapsed or ''} |")
