#!/bin/bash
# Builds a `splade` whose matrix products never use AVX-512: the gemm crate without its
# `x86-v4` feature (candle's products and our dense layers then take its AVX2/FMA kernels),
# from a detached worktree of HEAD, into its own target directory. With SPLADE_F32_KERNEL=avx2
# and SPLADE_INT8_KERNEL=avx2 every kernel of the encoder is then AVX2/FMA on any CPU: what
# `int8_encoders.py --avx2 --splade BIN` measures on an AVX-512 machine.
#
#   scripts/bench/build_avx2_splade.sh [DIR]   (default /work/avx2; BIN = DIR/target/release/splade)
set -euo pipefail
dir=${1:-/work/avx2}
repo=$(git -C "$(dirname "$0")" rev-parse --show-toplevel)
mkdir -p "$dir"
if [ ! -d "$dir/tree" ]; then
  git -C "$repo" worktree add -f --detach "$dir/tree" HEAD
fi
# The tree follows HEAD on every run (its one local edit, below, is made again).
git -C "$dir/tree" checkout -q -f --detach "$(git -C "$repo" rev-parse HEAD)"
cd "$dir/tree"
sed -i 's/^gemm = { version = "0.19", features = \["x86-v4"\] }/gemm = { version = "0.19" }/' Cargo.toml
grep -q '^gemm = { version = "0.19" }' Cargo.toml || { echo "Cargo.toml's gemm line changed: edit this script" >&2; exit 1; }
CARGO_TARGET_DIR="$dir/target" cargo build --release -p splade-cli
echo "$dir/target/release/splade"
