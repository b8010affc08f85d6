#!/usr/bin/env bash
# Assembles a build-side CUDA 13.0 toolkit from NVIDIA's PyPI wheels (nvcc, NVVM, headers,
# runtime, cuBLAS, cuRAND, NVRTC) for `--features cuda` builds, on machines without a system
# CUDA toolkit:
#
#   eval "$(bash scripts/setup/cuda.sh)"      # prints the exports below
#   cargo build --release -p splade-cli --features cuda
#
# Nothing is installed system-wide; DEST (default ~/.cache/splade-rs/cuda13) is reused when it
# already holds the toolkit. CUDA_COMPUTE_CAP selects the GPU generation the kernels are
# compiled for (default 90: H100/H200; 80 for A100, 89 for L4/L40, 120 for Blackwell); the
# driver (libcuda) comes from the machine that runs the binary. A link-time stub of libcuda is
# built here so a machine without a GPU driver can link; at run time the real driver is used.
set -euo pipefail
DEST=${DEST:-$HOME/.cache/splade-rs/cuda13}
CAP=${CUDA_COMPUTE_CAP:-90}
ROOT=$DEST/sp/nvidia/cu13
if [ ! -x "$ROOT/bin/nvcc" ] || [ ! -f "$ROOT/lib/stubs/libcuda.so" ]; then
  mkdir -p "$DEST/whl"
  python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
    --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 --platform manylinux_2_17_x86_64 \
    --platform manylinux2014_x86_64 --platform manylinux2010_x86_64 --platform manylinux_2_12_x86_64 \
    -d "$DEST/whl" \
    nvidia-cuda-nvcc==13.0.88 nvidia-nvvm==13.0.88 nvidia-cuda-crt==13.0.88 \
    nvidia-cuda-runtime==13.0.96 nvidia-cuda-cccl==13.0.85 nvidia-cuda-nvrtc==13.0.88 \
    nvidia-curand==10.4.0.35 nvidia-cublas==13.0.0.19 >&2
  for w in "$DEST"/whl/*.whl; do
    python3 -c 'import sys, zipfile; zipfile.ZipFile(sys.argv[1]).extractall(sys.argv[2])' "$w" "$DEST/sp"
  done
  chmod +x "$ROOT"/bin/* "$ROOT"/nvvm/bin/*
  (
    cd "$ROOT/lib"
    for l in cublas cublasLt nvrtc cudart; do ln -sf "lib$l.so.13" "lib$l.so"; done
    ln -sf libcurand.so.10 libcurand.so
    mkdir -p stubs
    # Every driver entry point cudarc declares, as empty functions, for linking only.
    cudarc=$(ls -d "${CARGO_HOME:-$HOME/.cargo}"/registry/src/*/cudarc-0.19.* 2>/dev/null | head -1)
    if [ -z "$cudarc" ]; then
      echo "cudarc sources not found: run 'cargo fetch' in the repository first" >&2
      exit 1
    fi
    grep -ohE '^ *pub unsafe fn cu[A-Za-z0-9_]+' "$cudarc"/src/driver/sys/*.rs \
      | awk '{print "void "$4"(void){}"}' | sort -u > stubs/libcuda_stub.c
    gcc -shared -fPIC -Wl,-soname,libcuda.so.1 -o stubs/libcuda.so stubs/libcuda_stub.c
  )
fi
echo "export CUDA_HOME=$ROOT CUDA_PATH=$ROOT PATH=$ROOT/bin:\$PATH CUDA_COMPUTE_CAP=$CAP CUDARC_CUDA_VERSION=13000 LIBRARY_PATH=$ROOT/lib:$ROOT/lib/stubs\${LIBRARY_PATH:+:\$LIBRARY_PATH} LD_LIBRARY_PATH=$ROOT/lib\${LD_LIBRARY_PATH:+:\$LD_LIBRARY_PATH}"
