#!/usr/bin/env bash
# Unpacks Intel MKL (static libraries, headers) and Intel OpenMP from PyPI into one
# directory that intel-mkl-src finds through MKLROOT, for `--features mkl` builds:
#
#   eval "$(bash scripts/setup/mkl.sh)"      # prints: export MKLROOT=...
#   cargo build --release -p splade-cli --features mkl
#
# Nothing is installed system-wide; DEST (default ~/.cache/splade-rs/mkl) is reused when it
# already holds the libraries. Linking MKL statically makes the binary about 60 MB larger.
set -euo pipefail
VERSION=${MKL_VERSION:-2026.2.0}
DEST=${DEST:-$HOME/.cache/splade-rs/mkl}
if [ ! -f "$DEST/lib/libmkl_core.a" ] || [ ! -f "$DEST/lib/libiomp5.a" ] || [ ! -f "$DEST/include/mkl.h" ]; then
  tmp=$(mktemp -d)
  trap 'rm -rf "$tmp"' EXIT
  python3 -m pip download -q --no-deps --only-binary=:all: --platform manylinux_2_28_x86_64 \
    --python-version 3.11 -d "$tmp" "mkl-static==$VERSION" "mkl-include==$VERSION" "intel-openmp==$VERSION" >&2
  mkdir -p "$DEST/lib" "$DEST/include"
  for w in "$tmp"/*.whl; do
    python3 - "$w" "$DEST" <<'PY'
import sys, zipfile
wheel, dest = sys.argv[1], sys.argv[2]
with zipfile.ZipFile(wheel) as z:
    for name in z.namelist():
        # <pkg>.data/data/{lib,include}/...: only MKL's libraries and headers.
        parts = name.split("/")
        if len(parts) > 3 and parts[1] == "data" and parts[2] in ("lib", "include"):
            rel = "/".join(parts[2:])
            if rel.startswith("lib/") and not (rel.endswith(".a") and ("mkl_" in rel or "iomp5" in rel)):
                continue
            target = f"{dest}/{rel}"
            import os
            os.makedirs(os.path.dirname(target), exist_ok=True)
            with z.open(name) as src, open(target, "wb") as out:
                out.write(src.read())
PY
  done
fi
echo "export MKLROOT=$DEST"
