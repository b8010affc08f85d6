#!/bin/bash
# Runs a command as if on an AVX2/FMA-only CPU (no AVX-512, AVX-VNNI, AVX10 or AMX): every
# CPUID the command's processes execute is answered with those features cleared (avx2_only.c,
# preloaded; Linux CPUID faulting), and glibc's own AVX-512 string functions are turned off.
# Every library's run-time dispatch then takes its AVX2 kernels: onnxruntime, PyTorch, numpy,
# the gemm crate and splade-rs alike. Same hardware, so clocks and caches are this CPU's.
#
#   scripts/bench/avx2_only.sh CMD [ARGS...]
#   scripts/bench/avx2_only.sh --check      (prints what the masked CPUID shows, then exits)
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
lib=${AVX2_ONLY_LIB:-/tmp/avx2_only/avx2_only.so}
if [ ! -f "$lib" ] || [ "$here/avx2_only.c" -nt "$lib" ]; then
  mkdir -p "$(dirname "$lib")"
  gcc -O2 -shared -fPIC -Wall -Wextra -o "$lib.tmp" "$here/avx2_only.c" -ldl
  mv "$lib.tmp" "$lib"
fi
export LD_PRELOAD="$lib${LD_PRELOAD:+:$LD_PRELOAD}"
export AVX2_ONLY=1  # what scripts started through this one look at (issue17_tables.sh)
export GLIBC_TUNABLES="glibc.cpu.hwcaps=-AVX512F,-AVX512VL,-AVX512BW,-AVX512DQ,-AVX512CD,-AVX512_VNNI,-AVX_VNNI${GLIBC_TUNABLES:+:$GLIBC_TUNABLES}"
if [ "${1:-}" = "--check" ]; then
  exec python3 -c '
import ctypes, mmap
# cpuid(leaf, sub) -> (eax, ebx, ecx, edx) through a few bytes of machine code
code = bytes.fromhex("53" "89f8" "89f1" "4989d0" "0fa2" "418900" "41895804" "41894808" "4189500c" "5b" "c3")
buf = mmap.mmap(-1, 4096, prot=mmap.PROT_READ | mmap.PROT_WRITE | mmap.PROT_EXEC)
buf.write(code)
f = ctypes.CFUNCTYPE(None, ctypes.c_uint32, ctypes.c_uint32, ctypes.c_void_p)(ctypes.addressof(ctypes.c_char.from_buffer(buf)))
out = (ctypes.c_uint32 * 4)()
def cpuid(leaf, sub=0):
    f(leaf, sub, ctypes.addressof(out)); return out[0], out[1], out[2], out[3]
_, b, c, d = cpuid(7)
a1 = cpuid(7, 1)[0]
_, _, c1, _ = cpuid(1)
print("avx2", bool(b >> 5 & 1), "fma", bool(c1 >> 12 & 1), "avx512f", bool(b >> 16 & 1),
      "avx512_vnni", bool(c >> 11 & 1), "amx_int8", bool(d >> 25 & 1), "avx_vnni", bool(a1 >> 4 & 1))
'
fi
exec "$@"
