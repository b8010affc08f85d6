#!/bin/bash
# Issue #17 measurements, to rerun on a quiet machine (2 cores; nothing else running).
# Data (regenerate if missing; see BENCHMARKS.md "Flat synthetic 1M (issue #17)"):
#   /work/venv-search/bin/python scripts/bench/make_synthetic.py --profile flat --docs 1000000 --queries 1000 --seed 11 --out /tmp/flat1m
#   head -200 /tmp/flat1m/queries.jsonl > /tmp/flat1m/q200.jsonl
#   /work/venv-search/bin/python scripts/bench/make_synthetic.py --docs 200000 --queries 200 --seed 7 --out /tmp/syn200k
# Usage: scripts/bench/issue17_rerun.sh OUT_DIR [OLD_BENCH_INDEX]
#   OLD_BENCH_INDEX: a bench_index binary of the commit to compare with (the topical A/B).
set -euo pipefail
out=${1:?OUT_DIR}
old=${2:-}
mkdir -p "$out"
py=/work/venv-search/bin/python
grep -o 'avx512[a-z_]*\|avx2\|fma' /proc/cpuinfo | sort -u | tr '\n' ' ' > "$out/cpu_flags.txt"
bin=$(cargo bench -p splade-index --bench bench_index --no-run --message-format=json 2>/dev/null |
  $py -c "import json,sys; print([m['executable'] for m in map(json.loads, sys.stdin) if m.get('reason')=='compiler-artifact' and m['target']['name']=='bench_index' and m.get('executable')][0])")
# 1. Topical 200k: blocks scored and QPS, this build against OLD_BENCH_INDEX, alternating.
for round in 1 2; do
  for b in new ${old:+old}; do
    exe=$bin; [ "$b" = old ] && exe=$old
    echo "$(date -u +%T) load $(cut -d' ' -f1 /proc/loadavg)" > "$out/syn200k-$b-$round.load"
    "$exe" /tmp/syn200k/docs.jsonl /tmp/syn200k/queries.jsonl 10 auto 0.9:0.8 > "$out/syn200k-$b-$round.json"
  done
done
# 2. Flat 1M: every peer in one run, Seismic from its saved index (issue17_tables.sh builds and
#    saves it the first time under /tmp/seismic-flat1m).
mkdir -p /tmp/seismic-flat1m
scripts/bench/issue17_tables.sh "$out" flat1m
cat "$out/flat1m.md"
