#!/usr/bin/env python3
"""The README's suite tables from a `rankwise compare --lrs` output: the rows chosen on dev (with their rate and the
difference to LoRA) and every rate tried (dev / test means).
  usage: scripts/suite-table.py OUTPUT BUDGET METHOD,METHOD,...
"""
import json
import sys

TASKS = ['tweets', 'snli', 'sms-spam', 'trec', 'bbc-news', 'vader-tweets']


def load(output):
    return json.load(open(output + '/results.json'))['rows']


def test_key(row):
    return 'test_pearson' if 'test_pearson' in row else 'test_macro_f1'


def dev_key(row):
    return 'dev_pearson' if 'test_pearson' in row else 'dev_macro_f1'


def summary(rows, budget, methods):
    """Per method and task: test mean ± sd at the chosen rate, and the difference to LoRA (✗ below -0.005)."""
    chosen = {(r['task'], r['method']): r for r in rows if r.get('chosen', True) and r['budget'] == budget}
    lines = ["| method | " + " | ".join(TASKS) + " | mean over tasks | collapsed runs |",
             "| --- |" + " --- |" * (len(TASKS) + 2)]
    for method in methods:
        cells, means, collapsed = [], [], 0
        for task in TASKS:
            row, lora = chosen.get((task, method)), chosen.get((task, 'lora'))
            if not row:
                cells.append('-')
                continue
            stat = row[test_key(row)]
            means.append(stat['mean'])
            collapsed += len(row.get('collapsed', []))
            cell = f"{stat['mean']:.3f} ± {stat['sd']:.3f} ({row.get('lr') or 'own'})"
            if stat['n'] < 3:
                cell += f" [{stat['n']} seeds]"
            if method != 'lora' and lora:
                delta = stat['mean'] - lora[test_key(lora)]['mean']
                cell += f"<br>Δ {delta:+.3f}" + (" ✗" if delta < -0.005 else "")
            cells.append(cell)
        mean = f"{sum(means) / len(means):.3f}" if len(means) == len(TASKS) else '-'
        lines.append(f"| {method} | " + " | ".join(cells) + f" | {mean} | {collapsed or '-'} |")
    return "\n".join(lines)


def every_rate(rows, budget, methods):
    """Per method and rate: dev / test means per task (bold: chosen; n✗: collapsed runs; [n]: seeds finished)."""
    rates = sorted({r.get('lr') for r in rows if r['budget'] == budget and r.get('lr')}, key=float)
    by_cell = {(r['task'], r['method'], r.get('lr')): r for r in rows if r['budget'] == budget}
    lines = ["| method | rate | " + " | ".join(TASKS) + " |", "| --- | --- |" + " --- |" * len(TASKS)]
    for method in methods:
        for rate in rates:
            cells = []
            for task in TASKS:
                row = by_cell.get((task, method, rate))
                if not row:
                    cells.append('-')
                    continue
                dev = row.get(dev_key(row), {}).get('mean', float('nan'))
                test = row[test_key(row)]
                cell = f"{dev:.3f} / {test['mean']:.3f}"
                if row.get('chosen'):
                    cell = f"**{cell}**"
                if row.get('collapsed'):
                    cell += f" ({len(row['collapsed'])}✗)"
                if test['n'] < 3:
                    cell += f" [{test['n']}]"
                cells.append(cell)
            lines.append(f"| {method} | {rate} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


if __name__ == '__main__':
    output, budget, methods = sys.argv[1], int(sys.argv[2]), sys.argv[3].split(',')
    rows = load(output)
    print(summary(rows, budget, methods))
    print()
    print(every_rate(rows, budget, methods))
