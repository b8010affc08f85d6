#!/usr/bin/env python3
"""Why binary-classification AP can differ by more than 1e-4 between splade-rs and
sentence-transformers on pair sets with (near-)identical sentences (paws-wiki): score ONE set of
embeddings (splade-rs's) with sentence-transformers' own float32 sparse pair functions and with
splade-rs's f64-accumulated ones, and print sklearn's AP for both.

  HF_HUB_OFFLINE=1 DIR/bin/python scripts/eval/ap_tie_sensitivity.py \
      [--pairs ../shared/data/paws-wiki/test/pairs.tsv] [--splade target/release/splade] [--model M]

If euclidean/manhattan agree here but not in compare_evaluators.py, their difference comes from
the embeddings (float noise of ~1e-7 between candle and torch, and torch's batch padding),
not from the evaluator; cosine additionally depends on how a pair of identical vectors rounds
(sentence-transformers: 0.99999994 .. 1.0000002, splade-rs: mostly exactly 1.0).
"""

from __future__ import annotations

import argparse
import csv
import json
import subprocess
import tempfile
from pathlib import Path

import numpy as np
import torch
from sklearn.metrics import average_precision_score
from sentence_transformers.util import (
    pairwise_cos_sim,
    pairwise_dot_score,
    pairwise_euclidean_sim,
    pairwise_manhattan_sim,
)

REPO_ROOT = Path(__file__).resolve().parents[2]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--pairs", type=Path, default=REPO_ROOT.parent / "shared/data/paws-wiki/test/pairs.tsv")
    ap.add_argument("--splade", type=Path, default=REPO_ROOT / "target/release/splade")
    ap.add_argument("--model", type=Path, default=Path.home() / ".cache/splade-rs/models/splade-tiny")
    args = ap.parse_args()

    with open(args.pairs, encoding="utf-8", newline="") as f:
        rows = list(csv.reader(f, delimiter="\t", quoting=csv.QUOTE_NONE))[1:]
    unique = list(dict.fromkeys([r[0] for r in rows] + [r[1] for r in rows]))
    with tempfile.TemporaryDirectory() as tmp:
        inp = Path(tmp) / "s.txt"
        inp.write_text("\n".join(unique) + "\n", encoding="utf-8")
        out = subprocess.run([str(args.splade), "encode", "--model", str(args.model), "--input", str(inp)],
                             check=True, capture_output=True, text=True).stdout
    embs = [json.loads(line) for line in out.splitlines()]
    pos = {s: i for i, s in enumerate(unique)}
    dim = 1 + max(max(e["indices"], default=0) for e in embs)

    def sparse(ids: list[int]) -> torch.Tensor:
        r, c, v = [], [], []
        for row, i in enumerate(ids):
            r += [row] * len(embs[i]["indices"])
            c += embs[i]["indices"]
            v += embs[i]["values"]
        return torch.sparse_coo_tensor(torch.tensor([r, c]), torch.tensor(v, dtype=torch.float32), (len(ids), dim)).coalesce()

    a = sparse([pos[r[0]] for r in rows])
    b = sparse([pos[r[1]] for r in rows])
    labels = np.array([int(float(r[2])) for r in rows])
    st = {
        "cosine": pairwise_cos_sim(a, b).numpy(),
        "dot": pairwise_dot_score(a, b).numpy(),
        "euclidean": -pairwise_euclidean_sim(a, b).numpy(),
        "manhattan": -pairwise_manhattan_sim(a, b).numpy(),
    }
    A, B = a.to_dense().double(), b.to_dense().double()
    dot = (A * B).sum(1)
    ours = {
        # splade-rs: dot rounded to f32, norms in f64
        "cosine": (dot.float().double() / (A.norm(dim=1) * B.norm(dim=1))).float().numpy(),
        "dot": dot.float().numpy(),
        "euclidean": (A - B).norm(dim=1).float().numpy(),
        "manhattan": (A - B).abs().sum(1).float().numpy(),
    }
    print("| function | AP, sentence-transformers scoring | AP, splade-rs scoring | diff |")
    print("|:--|--:|--:|--:|")
    for k in st:
        sign = 1 if k in ("cosine", "dot") else -1
        x = average_precision_score(labels, st[k] * sign)
        y = average_precision_score(labels, ours[k] * sign)
        print(f"| {k} | {x:.6f} | {y:.6f} | {abs(x - y):.2e} |")
    near_one = st["cosine"][st["cosine"] > 0.9999999]
    values, counts = np.unique(near_one, return_counts=True)
    print(f"\npairs with cosine ~ 1: sentence-transformers {dict(zip(values.tolist(), counts.tolist()))}, "
          f"splade-rs exactly 1.0: {(ours['cosine'] == 1).sum()}")


if __name__ == "__main__":
    main()
