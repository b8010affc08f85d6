#!/usr/bin/env python3
"""Quality of int8 inference (issue #17): sentence-transformers' ONNX int8 export next to
splade-rs `--quantize int8`, each against its own f32, on splade-tiny.

Run with the ONNX venv (sentence-transformers 5.1 + optimum-onnx + onnxruntime):

  HF_HUB_OFFLINE=1 /work/venv-onnx/bin/python scripts/eval/int8_quality.py \\
      --data ../shared/data --datasets scifact,mini-msmarco-dl19 --config avx512_vnni

For each dataset (BEIR folder, `qrels/test.tsv`, a document's text is `title + " " + text`
when the title is not empty, as `splade eval beir` and compare_evaluators.py read them):
nDCG@10 (dot product, SparseInformationRetrievalEvaluator) of ST ONNX f32
and ST ONNX int8, and the mean active-set Jaccard of int8 vs f32 over the queries and the
first --jaccard-docs documents. For splade-rs the same Jaccard comes from `splade encode`
with and without `--quantize int8` on the same texts; its nDCG@10 from `splade eval beir
--quantize none|int8` (printed by that command, not here).
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "scripts" / "bench"))
from int8_encoders import prepare_onnx  # noqa: E402


def read_beir(folder: Path):
    corpus = {}
    for line in (folder / "corpus.jsonl").read_text(encoding="utf-8").split("\n"):
        if not line.strip():
            continue
        row = json.loads(line)
        title, body = row.get("title") or "", row.get("text") or ""
        text = f"{title} {body}" if title else body
        if text.strip():  # a document with a title and no text is its title, as in splade eval beir
            corpus[str(row["_id"])] = text
    queries = {}
    for line in (folder / "queries.jsonl").read_text(encoding="utf-8").split("\n"):
        if not line.strip():
            continue
        row = json.loads(line)
        queries[str(row["_id"])] = row["text"]
    qrels: dict[str, set[str]] = {}
    lines = (folder / "qrels" / "test.tsv").read_text(encoding="utf-8").splitlines()
    for line in lines[1:]:
        q, d, s = line.split("\t")[:3]
        if float(s) > 0:
            qrels.setdefault(q, set()).add(d)
    queries = {q: t for q, t in queries.items() if q in qrels and t.strip()}
    return corpus, queries, qrels


def jaccard_rows(a, b) -> list[float]:
    """Per-row Jaccard of the active sets of two scipy CSR matrices (or sequences of sets)."""
    out = []
    for r in range(len(a)):
        x, y = a[r], b[r]
        u = len(x | y)
        out.append(1.0 if u == 0 else len(x & y) / u)
    return out


def st_sets(model, texts, query: bool):
    enc = model.encode_query if query else model.encode_document
    emb = enc(texts, batch_size=32, convert_to_sparse_tensor=True).coalesce().cpu()
    idx = emb.indices().numpy()
    vals = emb.values().numpy()
    sets = [set() for _ in texts]
    for (r, c), v in zip(idx.T, vals):
        if v > 0:
            sets[r].add(int(c))
    return sets


def rs_sets(splade: str, texts, quantize: str, query: bool, work: Path):
    f = work / "texts.txt"
    f.write_text("".join(t.replace("\n", " ") + "\n" for t in texts), encoding="utf-8")
    cmd = [splade, "encode", "--input", str(f), "--quantize", quantize]
    if query:
        cmd.append("--query")
    out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
    return [set(json.loads(l)["indices"]) for l in out.splitlines()]


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", default=str(REPO.parent / "shared" / "data"))
    ap.add_argument("--datasets", default="scifact,mini-msmarco-dl19")
    ap.add_argument("--config", default="avx512_vnni", help="avx512_vnni, avx512, avx2 or arm64")
    ap.add_argument("--jaccard-docs", type=int, default=1000)
    ap.add_argument("--splade", default=str(REPO / "target/release/splade"))
    ap.add_argument("--skip-ndcg", action="store_true")
    args = ap.parse_args()

    import torch
    from sentence_transformers import SparseEncoder
    from sentence_transformers.sparse_encoder.evaluation import SparseInformationRetrievalEvaluator

    torch.set_num_threads(2)
    subprocess.run([args.splade, "info"], check=True, capture_output=True)  # fetch splade-tiny
    tiny = Path(os.environ.get("SPLADE_RS_CACHE", Path.home() / ".cache" / "splade-rs")) / "models" / "splade-tiny"
    work = Path(tempfile.mkdtemp(prefix="splade-int8-quality-"))
    model_dir = work / "splade-tiny"
    shutil.copytree(tiny, model_dir)  # the export writes next to the model, never into the cache
    # The f32 and int8 exports, written next to the model as the speed benchmark makes them.
    name = prepare_onnx(model_dir, args.config)
    kw = {"provider": "CPUExecutionProvider"}
    f32 = SparseEncoder(str(model_dir), device="cpu", backend="onnx", model_kwargs=kw)
    int8 = SparseEncoder(str(model_dir), device="cpu", backend="onnx",
                         model_kwargs=dict(kw, file_name=name))
    results = {"config": args.config, "datasets": {}}
    for ds in args.datasets.split(","):
        corpus, queries, qrels = read_beir(Path(args.data) / ds)
        row = {}
        if not args.skip_ndcg:
            for label, model in [("st_onnx_f32", f32), ("st_onnx_int8", int8)]:
                ev = SparseInformationRetrievalEvaluator(queries, corpus, qrels, name=ds,
                                                         ndcg_at_k=[10], batch_size=32,
                                                         show_progress_bar=False)
                m = ev(model)
                row[f"{label}_ndcg@10"] = m[f"{ds}_dot_ndcg@10"]
                print(ds, label, row[f"{label}_ndcg@10"], file=sys.stderr, flush=True)
        docs = list(corpus.values())[: args.jaccard_docs]
        qs = list(queries.values())
        for side, texts, query in [("queries", qs, True), ("docs", docs, False)]:
            a, b = st_sets(f32, texts, query), st_sets(int8, texts, query)
            j = jaccard_rows(a, b)
            row[f"st_onnx_int8_jaccard_{side}"] = sum(j) / len(j)
            a, b = rs_sets(args.splade, texts, "none", query, work), rs_sets(args.splade, texts, "int8", query, work)
            j = jaccard_rows(a, b)
            row[f"splade_rs_int8_jaccard_{side}"] = sum(j) / len(j)
            row[f"{side}"] = len(texts)
        results["datasets"][ds] = row
        print(json.dumps({ds: row}), file=sys.stderr, flush=True)
    print(json.dumps(results, indent=1))
    shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
