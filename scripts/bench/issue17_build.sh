#!/bin/bash
# Issue #17, deliverable 5 in one command: the 1M builds, ours against splade-index's CSR -> CSC
# conversion, in memory, alternating, on the flat and the topical 1M collections; prints the CPU
# and every time, then each collection's range of ratios (second builds of each process,
# splade-index's three conversions a process).
#
#   scripts/bench/issue17_build.sh [ROUNDS]        (default 3 rounds; about 2 minutes a round)
#
# Needs /work/venv-search (numpy, scipy; see BENCHMARKS.md) and makes the collections when they
# are missing:
#   /tmp/flat1m   make_synthetic.py --profile flat --docs 1000000 --queries 1000 --seed 11
#   /tmp/syn1m    make_synthetic.py --docs 1000000 --queries 1000 --seed 7
# Run it on a quiet machine (nothing else running; after a `sync`): the first touch of fresh
# memory right after a heavy job can add seconds to a build. Some virtual machines still vary by
# a third from one run to the next (session 22): compare the medians of several rounds.
set -euo pipefail
rounds=${1:-3}
py=/work/venv-search/bin/python
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
[ -f /tmp/flat1m/docs.bin ] ||
  $py "$here/make_synthetic.py" --profile flat --docs 1000000 --queries 1000 --seed 11 --out /tmp/flat1m
[ -f /tmp/syn1m/docs.bin ] ||
  $py "$here/make_synthetic.py" --docs 1000000 --queries 1000 --seed 7 --out /tmp/syn1m
(cd "$root" && cargo build --release -p splade-index --example build_in_memory 2>&1 | tail -1)
ours=$root/target/release/examples/build_in_memory
. "$here/cpu.sh"
echo "CPU: $(cpu_model), $(nproc) cores"
echo "flags: $(grep -o 'avx512[a-z_0-9]*\|avx2\|fma\|amx[a-z_0-9]*' /proc/cpuinfo | sort -u | tr '\n' ' ')"
echo "commit: $(git -C "$root" rev-parse --short HEAD)$(git -C "$root" diff --quiet || echo ' (with changes)')"
# The clock, as the f32 FMA rate of one thread: our build is mostly instructions, splade-index's
# conversion mostly memory traffic, so the ratio moves with it (session 22: a Xeon at 81 GFLOP/s
# put the topical 1M at 1.8x; one at 118-127, at 1.2x).
if command -v gcc > /dev/null && gcc -O3 -funroll-loops -mfma -mavx2 -pthread "$here/fma_peak.c" -o /tmp/fma_peak 2> /dev/null; then
  echo "clock: $(/tmp/fma_peak 1 | grep -m1 ymm)"
fi
sync
log=$(mktemp)
for round in $(seq "$rounds"); do
  for c in flat1m syn1m; do
    # Second build of the process (the first pays for the process's fresh memory).
    t=$("$ours" 30522 /tmp/$c/docs.bin /tmp/$c/docs.ids 2 auto | grep '^run 1' |
      grep -o '[0-9.]* s in all' | cut -d' ' -f1)
    echo "$c ours $t" | tee -a "$log"
    for t in $($py "$here/splade_index_build_time.py" /tmp/$c/docs.bin | grep -o 'CSC: [0-9.]*' | cut -d' ' -f2); do
      echo "$c splade-index $t" | tee -a "$log"
    done
  done
done
$py - "$log" <<'EOF'
import sys
times = {}
for line in open(sys.argv[1]):
    c, who, t = line.split()
    times.setdefault(c, {}).setdefault(who, []).append(float(t))
for c, t in times.items():
    o, s = t["ours"], t["splade-index"]
    print(f"{c}: ours {min(o):.2f}-{max(o):.2f} s, splade-index {min(s):.2f}-{max(s):.2f} s, "
          f"ratio {min(o) / max(s):.2f}-{max(o) / min(s):.2f}x (medians {sorted(o)[len(o) // 2] / sorted(s)[len(s) // 2]:.2f}x)")
EOF
rm -f "$log"
