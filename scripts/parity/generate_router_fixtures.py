#!/usr/bin/env python3
"""Generate parity fixtures for inference-free (asymmetric) SPLADE models: a sentence-transformers
`Router` whose query route is `SparseStaticEmbedding` (a weight per vocabulary token, no transformer)
and whose document route is `Transformer` (fill-mask) + `SpladePooling`.

What it writes (under fixtures/encoder/ of the repository):
  models/router-learned/...   Router.for_query_document: query route SparseStaticEmbedding with seeded
                              random ("learned") weights, frozen=False; document route: the committed
                              tiny random model models/bert-tied-v6 (max pooling, log1p_relu); default
                              route "document"; prompts {"query": "query: ", "document": "passage: "}
  models/router-idf/...       Router with custom route names ("sparse_query", "splade_doc"),
                              route_mappings {("query", "text"): "sparse_query", ("document", None):
                              "splade_doc"}, no default route (allow_empty_key=False): `encode` without a
                              task fails. Query route: SparseStaticEmbedding.from_json(idf.json, frozen=True)
                              with IDF weights computed on SciFact; document route: models/distilbert-untied-v6
                              (sum pooling, relu, max_seq_length 32)
  router-learned/expected.json, router-idf/expected.json
                              encode_query / encode_document / encode (default route) vectors for every
                              text of texts.json, max_active_dims 1 and 8 on both routes (texts whose k-th
                              and (k+1)-th weights tie are left out: ties have no defined order), the query
                              route's tokens for a few texts, and the ValueError message of a missing route.

Reference environment (never inside the repository): sentence-transformers 6.2.0, torch (CPU).
Run from the repository root, after generate_encoder_fixtures.py (it reuses texts.json and two of its
models); deterministic (seeded), rerunning gives byte-identical expected.json files:
  HF_HUB_OFFLINE=1 /work/venv-ref/bin/python scripts/parity/generate_router_fixtures.py
  options: [--data-dir ../shared/data] [--out fixtures/encoder]
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import sys
from collections import Counter
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")

import numpy as np  # noqa: E402
import torch  # noqa: E402
from shared_text import resolve  # fixtures refer to ../shared/data texts, never copy them

REPO_ROOT = Path(__file__).resolve().parents[2]
VOCAB_SIZE = 30522
MAX_ACTIVE_DIMS_KS = [1, 8]
N_IDF_DOCS = 2000


def f32(x) -> float:
    return float(str(np.float32(x)))


def write_json(path: Path, obj) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    text = json.dumps(obj, ensure_ascii=False, separators=(",", ":"), allow_nan=False)
    path.write_text(text + "\n", encoding="utf-8")


def sparse_rows(emb: torch.Tensor) -> list[dict]:
    """2D embeddings -> per row {"indices": ascending, "values": f32} of every nonzero entry."""
    dense = emb.to_dense() if emb.is_sparse else emb
    dense = dense.detach().cpu().float()
    assert torch.isfinite(dense).all()
    rows = []
    for row in dense:
        idx = torch.nonzero(row != 0, as_tuple=False).flatten()
        rows.append({"indices": idx.tolist(), "values": [f32(v) for v in row[idx].tolist()]})
    return rows


def untied_rows(emb: torch.Tensor, k: int) -> list[int]:
    """Rows whose k-th and (k+1)-th largest absolute values differ (top-k well defined)."""
    dense = (emb.to_dense() if emb.is_sparse else emb).abs().float()
    out = []
    for i, row in enumerate(dense):
        nnz = int((row != 0).sum())
        if nnz <= k:
            out.append(i)
            continue
        top = torch.topk(row, k + 1).values
        if top[k - 1] != top[k]:
            out.append(i)
    return out


def idf_weights(data_dir: Path, tokenizer) -> dict[str, float]:
    """idf(t) = ln(1 + (N - df + 0.5) / (df + 0.5)) over the first N_IDF_DOCS SciFact passages, for every
    token seen (BM25's idf; the form OpenSearch's idf.json files hold)."""
    df: Counter[int] = Counter()
    n = 0
    with open(data_dir / "scifact" / "corpus.jsonl", encoding="utf-8") as f:
        for line in f:
            d = json.loads(line)
            ids = tokenizer(d["title"] + " " + d["text"], add_special_tokens=False)["input_ids"]
            df.update(set(ids))
            n += 1
            if n == N_IDF_DOCS:
                break
    vocab = tokenizer.convert_ids_to_tokens(sorted(df))
    return {tok: math.log(1.0 + (n - df[i] + 0.5) / (df[i] + 0.5)) for tok, i in zip(vocab, sorted(df))}


def build_learned(out: Path) -> Path:
    from sentence_transformers import SparseEncoder
    from sentence_transformers.sparse_encoder.modules import (
        Router,
        SparseStaticEmbedding,
        SpladePooling,
        Transformer,
    )

    src = out / "models" / "bert-tied-v6"
    doc = SparseEncoder(str(src), device="cpu")
    transformer, pooling = doc[0], doc[1]
    assert isinstance(transformer, Transformer) and isinstance(pooling, SpladePooling)
    gen = torch.Generator().manual_seed(55)
    weight = torch.rand(VOCAB_SIZE, generator=gen) * 3.0
    weight[torch.rand(VOCAB_SIZE, generator=gen) < 0.1] = 0.0  # some tokens carry no weight
    static = SparseStaticEmbedding(tokenizer=transformer.tokenizer, weight=weight, frozen=False)
    router = Router.for_query_document(query_modules=[static], document_modules=[transformer, pooling])
    model = SparseEncoder(
        modules=[router],
        device="cpu",
        prompts={"query": "query: ", "document": "passage: "},
        similarity_fn_name="dot",
    )
    folder = out / "models" / "router-learned"
    if folder.exists():
        shutil.rmtree(folder)
    model.save(str(folder), create_model_card=False)
    return folder


def build_idf(out: Path, data_dir: Path) -> Path:
    import tempfile

    from sentence_transformers import SparseEncoder
    from sentence_transformers.sparse_encoder.modules import Router, SparseStaticEmbedding

    src = out / "models" / "distilbert-untied-v6"
    doc = SparseEncoder(str(src), device="cpu")
    transformer, pooling = doc[0], doc[1]
    idf = idf_weights(data_dir, transformer.tokenizer)
    with tempfile.TemporaryDirectory(prefix="splade-rs-router-") as tmp:
        path = Path(tmp) / "idf.json"
        path.write_text(json.dumps(idf), encoding="utf-8")
        static = SparseStaticEmbedding.from_json(str(path), tokenizer=transformer.tokenizer, frozen=True)
    router = Router(
        sub_modules={"sparse_query": [static], "splade_doc": [transformer, pooling]},
        default_route=None,
        allow_empty_key=False,
        route_mappings={("query", "text"): "sparse_query", ("document", None): "splade_doc"},
    )
    model = SparseEncoder(modules=[router], device="cpu", similarity_fn_name="dot")
    folder = out / "models" / "router-idf"
    if folder.exists():
        shutil.rmtree(folder)
    model.save(str(folder), create_model_card=False)
    return folder


def expected_for(name: str, folder: Path, texts: list[str], out: Path) -> None:
    import sentence_transformers
    import transformers
    from sentence_transformers import SparseEncoder

    model = SparseEncoder(str(folder), device="cpu")
    model.eval()
    router = model[0]
    exp: dict = {
        "model": name,
        "model_path": f"models/{name}",
        "versions": {
            "sentence_transformers": sentence_transformers.__version__,
            "transformers": transformers.__version__,
            "torch": torch.__version__,
        },
        "routes": {k: [type(m).__name__ for m in v] for k, v in router.sub_modules.items()},
        "default_route": router.default_route,
        "prompts": model.prompts,
    }
    with torch.no_grad():
        q = model.encode_query(texts, batch_size=16, convert_to_tensor=True)
        d = model.encode_document(texts, batch_size=16, convert_to_tensor=True)
        exp["encode_query"] = sparse_rows(q)
        exp["encode_document"] = sparse_rows(d)
        try:
            e = model.encode(texts, batch_size=16, convert_to_tensor=True)
            exp["encode"] = sparse_rows(e)
            exp["encode_error"] = None
        except ValueError as err:
            exp["encode"] = None
            exp["encode_error"] = str(err)
        try:
            model.encode(texts[:2], task="classification", convert_to_tensor=True)
            exp["unknown_task_error"] = None
        except ValueError as err:
            exp["unknown_task_error"] = str(err)
        mad: dict = {}
        for k in MAX_ACTIVE_DIMS_KS:
            qk = model.encode_query(texts, batch_size=16, max_active_dims=k, convert_to_tensor=True)
            dk = model.encode_document(texts, batch_size=16, max_active_dims=k, convert_to_tensor=True)
            q_ids, d_ids = untied_rows(q, k), untied_rows(d, k)
            mad[str(k)] = {
                "query_text_ids": q_ids,
                "query": [sparse_rows(qk)[i] for i in q_ids],
                "document_text_ids": d_ids,
                "document": [sparse_rows(dk)[i] for i in d_ids],
            }
        exp["max_active_dims"] = mad
        # The query route's tokens (what the static weights are looked up for).
        static = router.sub_modules[router._resolve_route(task="query", modality="text")][0]
        features = static.preprocess(texts[:5], prompt=model.prompts.get("query") or None)
        exp["query_tokens"] = [
            [int(t) for t, m in zip(ids, mask) if m]
            for ids, mask in zip(features["input_ids"].tolist(), features["attention_mask"].tolist())
        ]
        exp["query_frozen"] = bool(static.frozen)
        exp["query_max_seq_length"] = int(static.tokenizer.model_max_length)
    write_json(out / name / "expected.json", exp)
    print(f"wrote {out / name / 'expected.json'}", file=sys.stderr)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-dir", type=Path, default=REPO_ROOT.parent / "shared" / "data")
    parser.add_argument("--out", type=Path, default=REPO_ROOT / "fixtures" / "encoder")
    args = parser.parse_args()
    torch.manual_seed(0)
    texts = resolve(json.loads((args.out / "texts.json").read_text(encoding="utf-8")))
    learned = build_learned(args.out)
    idf = build_idf(args.out, args.data_dir)
    for folder in (learned, idf):
        for p in folder.rglob("*.json"):
            assert "splade-rs-" not in p.read_text(encoding="utf-8"), p
    expected_for("router-learned", learned, texts, args.out)
    expected_for("router-idf", idf, texts, args.out)


if __name__ == "__main__":
    main()
