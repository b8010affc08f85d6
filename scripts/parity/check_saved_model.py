#!/usr/bin/env python3
"""Round trip: sentence-transformers 6.x loads a folder saved by splade-rs and encodes the same
vectors as `splade encode` on it.

  HF_HUB_OFFLINE=1 /path/to/venv/bin/python scripts/parity/check_saved_model.py MODEL_DIR [--splade target/release/splade]
Exit status 0 when every text matches within 1e-4 * max(1, |value|) with identical active sets.
"""
import argparse
import json
import subprocess
import sys

import torch
from sentence_transformers import SparseEncoder

TEXTS = ["How can I learn to code fast?", "Why is the sky blue?", "", "Crème brûlée à la façon de Zoë",
         "Vaccines train the immune system by exposing it to antigens."]


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("model")
    ap.add_argument("--splade", default="target/release/splade")
    args = ap.parse_args()
    model = SparseEncoder(args.model, device="cpu")
    ref = model.encode(TEXTS, convert_to_tensor=True).to_dense()
    out = subprocess.run([args.splade, "encode", "--model", args.model], input="\n".join(TEXTS) + "\n",
                         capture_output=True, text=True, check=True)
    worst = 0.0
    for i, line in enumerate(out.stdout.splitlines()):
        row = json.loads(line)
        ours = torch.zeros(ref.shape[1])
        ours[torch.tensor(row["indices"], dtype=torch.long)] = torch.tensor(row["values"])
        active_ref = set(torch.nonzero(ref[i] > 1e-6).flatten().tolist())
        active_ours = set(torch.nonzero(ours > 1e-6).flatten().tolist())
        for j in active_ref ^ active_ours:
            if max(float(ref[i][j]), float(ours[j])) >= 1e-4:
                print(f"text {i}: index {j} active on one side only", file=sys.stderr)
                return 1
        err = ((ours - ref[i]).abs() / ref[i].abs().clamp(min=1.0)).max().item()
        worst = max(worst, err)
    print(f"{len(TEXTS)} texts, max relative error {worst:.2e}")
    return 0 if worst <= 1e-4 else 1


if __name__ == "__main__":
    sys.exit(main())
