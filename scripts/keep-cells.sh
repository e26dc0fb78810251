#!/usr/bin/env bash
# Copies the finished cells of a `rankwise compare` output (each cell's run.json, results.json, metrics.jsonl and
# test_generations.jsonl; no checkpoints or adapters) and the grid's data.json and options.json into DEST, so that a grid measured over several sessions keeps
# its cells in the repository: copying DEST back into an output directory makes `compare` skip them as done.
#   usage: scripts/keep-cells.sh OUTPUT DEST
set -euo pipefail
output=$1
dest=$2
mkdir -p "$dest"
for file in data.json options.json; do
  [ -f "$output/$file" ] && cp "$output/$file" "$dest/"
done
for results in "$output"/*/*/results.json; do
  [ -f "$results" ] || continue
  cell=$(dirname "$results")
  target="$dest/$(basename "$(dirname "$cell")")/$(basename "$cell")"
  mkdir -p "$target"
  for file in run.json results.json metrics.jsonl test_generations.jsonl; do
    [ -f "$cell/$file" ] && cp "$cell/$file" "$target/"
  done
  echo "kept $target"
done
