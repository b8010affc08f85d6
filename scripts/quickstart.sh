#!/usr/bin/env bash
# The README's main job: index 5,000 real MS MARCO passages with the default model
# (splade-tiny, fetched once into ~/.cache/splade-rs) and search them.
set -euo pipefail
cd "$(dirname "$0")/.."
data=../shared/data/mini-msmarco-dl19
out=target/quickstart
splade=./target/release/splade
cargo build --release -q -p splade-cli
mkdir -p "$out"
"$splade" index build --model splade-tiny --corpus "$data/corpus.jsonl" --out "$out/msmarco-index"
"$splade" index info --index "$out/msmarco-index"
for query in "causes of left ventricular hypertrophy" "how long is the life cycle of a flea" "what is physical description of spruce"; do
  echo
  echo "== $query"
  "$splade" search --index "$out/msmarco-index" --model splade-tiny --k 5 --explain 4 "$query"
done
"$splade" search --index "$out/msmarco-index" --model splade-tiny --queries "$data/queries.jsonl" --k 100 > "$out/dl19.run"
echo
echo "TREC run of the DL19 queries: $out/dl19.run ($(wc -l < "$out/dl19.run") lines)"
