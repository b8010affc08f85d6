#!/usr/bin/env python3
"""Per-query latency of an inference-free SPLADE model: the query route (SparseStaticEmbedding, no
transformer) next to the same model's document route (splade-tiny's BertForMaskedLM + SpladePooling),
in sentence-transformers 6.2 and in splade-rs (`splade bench --task query|document --per-text`).

1. Builds the model with sentence-transformers (not committed): Router.for_query_document with
   query route SparseStaticEmbedding.from_json(IDF over the first 2,000 SciFact passages, frozen) and
   document route splade-tiny (the folder splade-rs caches at ~/.cache/splade-rs/models/splade-tiny).
2. Times sentence-transformers: model.encode_query([q]) and model.encode_document([q]) for each query
   alone (one call per query, after 20 warm-up calls), p50/p99/mean in microseconds.
3. Runs `splade bench` on the same queries and model folder for both tasks and prints one table.

Run from the repository root after `cargo build --release -p splade-cli`:
  /work/venv-ref/bin/python scripts/bench/router_latency.py [--queries N] [--threads 2]
"""

from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")

REPO = Path(__file__).resolve().parents[2]
DATA = REPO.parent / "shared" / "data" / "scifact"
SPLADE_TINY = Path.home() / ".cache" / "splade-rs" / "models" / "splade-tiny"


def percentiles(micros: list[float]) -> dict:
    s = sorted(micros)
    pct = lambda p: s[min(len(s), max(1, math.ceil(p * len(s)))) - 1]  # noqa: E731
    return {"p50": pct(0.5), "p99": pct(0.99), "mean": sum(s) / len(s)}


def build(folder: Path) -> None:
    from sentence_transformers import SparseEncoder
    from sentence_transformers.sparse_encoder.modules import (
        Router,
        SparseStaticEmbedding,
        SpladePooling,
        Transformer,
    )

    doc = Transformer(str(SPLADE_TINY), transformer_task="fill-mask")
    tok = doc.tokenizer
    df: Counter[int] = Counter()
    n = 0
    with open(DATA / "corpus.jsonl", encoding="utf-8") as f:
        for line in f:
            d = json.loads(line)
            df.update(set(tok(d["title"] + " " + d["text"], add_special_tokens=False)["input_ids"]))
            n += 1
            if n == 2000:
                break
    ids = sorted(df)
    idf = {t: math.log(1 + (n - df[i] + 0.5) / (df[i] + 0.5)) for t, i in zip(tok.convert_ids_to_tokens(ids), ids)}
    path = folder.parent / "idf.json"
    path.write_text(json.dumps(idf), encoding="utf-8")
    static = SparseStaticEmbedding.from_json(str(path), tokenizer=tok, frozen=True)
    router = Router.for_query_document(
        query_modules=[static],
        document_modules=[doc, SpladePooling(pooling_strategy="max", activation_function="log1p_relu")],
    )
    SparseEncoder(modules=[router], device="cpu", similarity_fn_name="dot").save(str(folder), create_model_card=False)


def time_st(folder: Path, queries: list[str]) -> dict:
    import torch
    from sentence_transformers import SparseEncoder

    model = SparseEncoder(str(folder), device="cpu")
    out = {}
    for task in ("query", "document"):
        fn = model.encode_query if task == "query" else model.encode_document
        for q in queries[:20]:
            fn([q])
        micros = []
        with torch.inference_mode():
            for q in queries:
                t = time.perf_counter()
                fn([q])
                micros.append((time.perf_counter() - t) * 1e6)
        out[task] = percentiles(micros)
    return out


def time_rust(folder: Path, qfile: Path, threads: int) -> dict:
    out = {}
    env = dict(os.environ, RAYON_NUM_THREADS=str(threads))
    for task in ("query", "document"):
        res = subprocess.run(
            [str(REPO / "target/release/splade"), "bench", "--model", str(folder), "--input", str(qfile),
             "--task", task, "--per-text", "--batch-size", "1"],
            check=True, capture_output=True, text=True, env=env,
        )
        out[task] = json.loads(res.stdout.strip().splitlines()[-1])["latency_us"]
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--queries", type=int, default=300)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    import torch

    torch.set_num_threads(args.threads)
    with open(DATA / "queries.jsonl", encoding="utf-8") as f:
        queries = [json.loads(line)["text"] for line in f][: args.queries]
    with tempfile.TemporaryDirectory(prefix="splade-router-bench-") as tmp:
        folder = Path(tmp) / "model"
        build(folder)
        qfile = Path(tmp) / "queries.txt"
        qfile.write_text("".join(q.replace("\n", " ") + "\n" for q in queries), encoding="utf-8")
        st = time_st(folder, queries)
        rs = time_rust(folder, qfile, args.threads)
    print(f"{len(queries)} SciFact queries, one per call, {args.threads} threads; microseconds per query")
    print("| engine | route | p50 | p99 | mean |")
    print("|---|---|---|---|---|")
    for name, res in (("splade-rs", rs), ("sentence-transformers 6.2", st)):
        for task, label in (("query", "query (SparseStaticEmbedding)"), ("document", "document (splade-tiny MLM)")):
            r = res[task]
            print(f"| {name} | {label} | {r['p50']:.1f} | {r['p99']:.1f} | {r['mean']:.1f} |")
    json.dump({"splade-rs": rs, "sentence-transformers": st}, sys.stderr)
    print(file=sys.stderr)


if __name__ == "__main__":
    main()
