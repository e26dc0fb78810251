#!/usr/bin/env python3
"""Per-group gradient and update norms over the first steps of runs, as a Markdown table.

Reads the `train` lines of each run's metrics.jsonl (write one per step with `--log-every 1`): for every
parameter group (lora_A, lora_E, lora_B, classifier, ...) the gradient norm before clipping, the norm of
the optimizer's update and the value norm, plus the mean norm of the adapters' dense update ΔW.

    python3 scripts/group-norms.py RUN_DIR [RUN_DIR ...] [--steps 1,2,3,5,10,20,40,63]
"""
import argparse
import json
import os
import sys


def load(run):
    path = os.path.join(run, "metrics.jsonl")
    rows = {}
    with open(path) as f:
        for number, line in enumerate(f, 1):
            try:
                o = json.loads(line)
            except json.JSONDecodeError as e:
                sys.exit(f"{path}:{number}: not JSON ({e})")
            if o.get("event") == "train" and "groups" in o:
                rows[o["step"]] = o
    if not rows:
        sys.exit(f"{path}: no train lines with group norms (run with --log-every 1 on this version)")
    return rows


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("runs", nargs="+")
    ap.add_argument("--steps", default="1,2,3,5,10,20,40,63")
    args = ap.parse_args()
    steps = [int(s) for s in args.steps.split(",")]
    print("| run | step | lr | " + "group: grad / update / norm | " * 1 + "mean ‖ΔW‖ |")
    print("| --- | --- | --- | --- | --- |")
    for run in args.runs:
        rows = load(run)
        name = os.path.basename(os.path.normpath(run))
        for s in steps:
            o = rows.get(s)
            if o is None:
                continue
            groups = "; ".join(f"{g} {v['grad']:.2e} / {v['update']:.2e} / {v['norm']:.2e}"
                               for g, v in sorted(o["groups"].items()))
            print(f"| {name} | {s} | {o['lr']:.1e} | {groups} | {o.get('delta_norm', 0):.2e} |")


if __name__ == "__main__":
    main()
