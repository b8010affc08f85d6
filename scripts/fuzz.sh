#!/usr/bin/env bash
# The long fuzz pass: every property-based fuzz target of the suite with many more cases
# than CI runs (CI: SPLADE_FUZZ_CASES=48, the default). Usage:
#   scripts/fuzz.sh [CASES]        (default 5000 cases per property)
# Targets: the JSONL and Seismic readers, the index opener over mutated index directories
# (crates/index/tests/fuzz.rs), the model-folder loader over mutated configs and
# safetensors headers and the tokenizer + encoder over arbitrary bytes
# (crates/encoder/tests/fuzz.rs), the CLI text inputs (crates/cli/tests/hardening.rs).
# A failure prints proptest's minimal failing input; record it in RELIABILITY.md.
set -euo pipefail
cd "$(dirname "$0")/.."
CASES="${1:-5000}"
start=$(date +%s)
SPLADE_FUZZ_CASES="$CASES" cargo test --release -p splade-index --test fuzz
SPLADE_FUZZ_CASES="$CASES" cargo test --release -p splade-encoder --test fuzz
echo "fuzz pass: $CASES cases per property in $(( $(date +%s) - start )) s"
