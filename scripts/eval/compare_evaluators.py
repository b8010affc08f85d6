#!/usr/bin/env python3
"""Run sentence-transformers' sparse evaluators and `splade eval` on the same data and model,
and print a comparison table (markdown) of their metrics and wall times.

  HF_HUB_OFFLINE=1 DIR/bin/python scripts/eval/compare_evaluators.py \
      [--data-dir ../shared/data] [--model ~/.cache/splade-rs/models/splade-tiny] \
      [--splade target/release/splade] [--ir scifact,cisi] [--binary mrpc] [--json out.json]
  DIR/bin/python scripts/eval/compare_evaluators.py --from-json a.json,b.json   # table only

DIR is a venv with sentence-transformers 6.2, torch and scikit-learn (outside the repository).
Build the CLI first: `cargo build --release -p splade-cli`. Both sides use the same model folder
and the same data preparation (BEIR: document text = title + " " + text when the title is
non-empty; qrels with score > 0 are relevant; pairs.tsv read with no quoting). Wall times
include model loading for both sides and are measured on whatever machine runs this script.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

REPO_ROOT = Path(__file__).resolve().parents[2]
IR_SETS = ["scifact", "mini-msmarco-dl19", "mini-dbpedia-entity", "cacm", "cisi", "cranfield"]
BINARY_SETS = ["quora-pairs", "mrpc", "paws-wiki"]
IR_SHOWN = ["dot_ndcg@10", "dot_mrr@10", "dot_map@100", "dot_recall@10"]
BIN_SHOWN = ["cosine_accuracy", "dot_f1", "max_ap", "euclidean_accuracy_threshold"]


def read_jsonl(path: Path) -> list[dict]:
    with open(path, encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


def beir(d: Path) -> tuple[dict, dict, dict]:
    corpus = {}
    for x in read_jsonl(d / "corpus.jsonl"):
        title = x.get("title") or ""
        corpus[str(x["_id"])] = f"{title} {x['text']}" if title else x["text"]
    queries = {str(x["_id"]): x["text"] for x in read_jsonl(d / "queries.jsonl")}
    relevant: dict[str, set[str]] = {}
    with open(d / "qrels" / "test.tsv", encoding="utf-8") as f:
        for i, line in enumerate(f):
            parts = line.rstrip("\n").rstrip("\r").split("\t")
            try:
                score = float(parts[2])
            except ValueError:
                if i == 0:
                    continue
                raise
            if score > 0:
                relevant.setdefault(parts[0], set()).add(parts[1])
    return corpus, queries, relevant


def pairs(path: Path) -> tuple[list[str], list[str], list[int]]:
    with open(path, encoding="utf-8", newline="") as f:
        rows = list(csv.reader(f, delimiter="\t", quoting=csv.QUOTE_NONE))[1:]
    return [r[0] for r in rows], [r[1] for r in rows], [int(float(r[2])) for r in rows]


def run_rust(cmd: list[str]) -> tuple[dict, float]:
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "m.json"
        start = time.perf_counter()
        subprocess.run(cmd + ["--output", str(out)], check=True, stdout=subprocess.DEVNULL)
        seconds = time.perf_counter() - start
        return json.loads(out.read_text()), seconds


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--data-dir", type=Path, default=REPO_ROOT.parent / "shared" / "data")
    ap.add_argument("--model", type=Path, default=Path.home() / ".cache" / "splade-rs" / "models" / "splade-tiny")
    ap.add_argument("--splade", type=Path, default=REPO_ROOT / "target" / "release" / "splade")
    ap.add_argument("--ir", default=",".join(IR_SETS))
    ap.add_argument("--binary", default=",".join(BINARY_SETS))
    ap.add_argument("--json", type=Path, help="also write all metrics of both sides here (updated after each dataset)")
    ap.add_argument("--from-json", help="print the table of earlier --json files (comma-separated) and exit")
    args = ap.parse_args()

    if args.from_json:
        rows = []
        for f in args.from_json.split(","):
            for name, d in json.loads(Path(f).read_text()).items():
                kind = "ir" if any(k.startswith("dot_ndcg") for k in d["st"]) else "binary"
                rows.append((kind, name, d["st"], d["splade-rs"], d["st_seconds"], d["splade_rs_seconds"]))
        print_table(rows)
        return

    from sentence_transformers import SparseEncoder
    from sentence_transformers.sparse_encoder.evaluation import (
        SparseBinaryClassificationEvaluator,
        SparseInformationRetrievalEvaluator,
    )

    def st_model():
        return SparseEncoder(str(args.model), device="cpu")

    rows = []
    dump = {}
    for name in [s for s in args.ir.split(",") if s]:
        d = args.data_dir / name
        start = time.perf_counter()
        corpus, queries, relevant = beir(d)
        ev = SparseInformationRetrievalEvaluator(queries, corpus, relevant, write_csv=False)
        st = {k: float(v) for k, v in ev(st_model()).items()}
        st_s = time.perf_counter() - start
        rs, rs_s = run_rust([str(args.splade), "eval", "ir", "--model", str(args.model), "--corpus", str(d / "corpus.jsonl"),
                             "--queries", str(d / "queries.jsonl"), "--qrels", str(d / "qrels" / "test.tsv")])
        rows.append(("ir", name, st, rs, st_s, rs_s))
        dump[name] = {"st": st, "splade-rs": rs, "st_seconds": st_s, "splade_rs_seconds": rs_s}
        if args.json:
            args.json.write_text(json.dumps(dump, indent=1) + "\n")
        print(f"{name}: ST {st_s:.1f}s, splade-rs {rs_s:.1f}s", file=sys.stderr)
    for name in [s for s in args.binary.split(",") if s]:
        p = args.data_dir / name / "test" / "pairs.tsv"
        start = time.perf_counter()
        s1, s2, labels = pairs(p)
        ev = SparseBinaryClassificationEvaluator(s1, s2, labels, write_csv=False,
                                                 similarity_fn_names=["cosine", "dot", "euclidean", "manhattan"])
        st = {k: float(v) for k, v in ev(st_model()).items()}
        st_s = time.perf_counter() - start
        rs, rs_s = run_rust([str(args.splade), "eval", "binary", "--model", str(args.model), "--pairs", str(p)])
        rows.append(("binary", name, st, rs, st_s, rs_s))
        dump[name] = {"st": st, "splade-rs": rs, "st_seconds": st_s, "splade_rs_seconds": rs_s}
        if args.json:
            args.json.write_text(json.dumps(dump, indent=1) + "\n")
        print(f"{name}: ST {st_s:.1f}s, splade-rs {rs_s:.1f}s", file=sys.stderr)

    print_table(rows)


def print_table(rows: list) -> None:
    print("| dataset | metric | sentence-transformers | splade-rs | max abs diff (all keys) | ST s | splade-rs s |")
    print("|:--|:--|--:|--:|--:|--:|--:|")
    for kind, name, st, rs, st_s, rs_s in rows:
        missing = sorted(set(st) ^ set(rs))
        diffs = {k: abs(st[k] - rs[k]) for k in st if k in rs and rs[k] is not None}
        worst = max(diffs, key=diffs.get)
        shown = IR_SHOWN if kind == "ir" else BIN_SHOWN
        for i, k in enumerate(shown):
            tail = f"{diffs[worst]:.2e} ({worst})" if i == 0 else ""
            times = (f"{st_s:.1f}", f"{rs_s:.1f}") if i == 0 else ("", "")
            label = name if i == 0 else ""
            print(f"| {label} | {k} | {st[k]:.6f} | {rs[k]:.6f} | {tail} | {times[0]} | {times[1]} |")
        if missing:
            print(f"| {name} | keys only on one side | {missing} | | | | |")


if __name__ == "__main__":
    main()
