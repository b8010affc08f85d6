#!/usr/bin/env python3
"""Generate parity fixtures for the other sparse evaluators of sentence-transformers 6.2.

Every fixture holds the evaluator's inputs (real rows of ../shared/data) and `expected`, the
dictionary the real sentence-transformers evaluator returns on splade-tiny (keys in order).
The Rust tests (crates/eval/tests/evaluators.rs) run the same evaluator on the same inputs with
splade-rs' encoder and compare every key.

What it writes (under fixtures/eval/evaluators/ of the repository):
  correlation_scores.json  scipy's pearsonr / spearmanr of tie-rich float32 scores (no model).
  similarity_stsb.json   SparseEmbeddingSimilarityEvaluator, STS-B dev (first 300 pairs), all
                         four similarity functions, main_similarity=cosine, name "sts_dev".
  similarity_sick.json   the same on SICK test (first 300 pairs), the model's default function
                         (dot), no name.
  triplet_scifact.json   SparseTripletEvaluator, 150 SciFact train queries: anchor = the query,
                         positive = its first relevant abstract, negative = the non-relevant
                         abstract of the first 2,000 sharing the most lowercase words with the
                         query (ties: corpus order); four functions, margin 0.5 for dot.
  reranking_scifact.json SparseRerankingEvaluator (cos_sim, at_k 10), 40 SciFact test queries:
                         positives = the relevant abstracts, negatives = the 10 non-relevant
                         abstracts of a 1,000-document pool sharing the most lowercase words
                         with the query (ties: pool order); texts cut to 400 characters.
  reranking_dl19.json    the same on TREC DL19 (mini-msmarco-dl19): positives = passages
                         judged 2-3, negatives = passages judged 1 (TREC's pooled candidates),
                         at most 6 + 10 per query; dot score, at_k 5, name "dl19".
  mse_mrpc.json          SparseMSEEvaluator, teacher = splade-tiny, sources = MRPC sentence1,
                         targets = sentence2 (150 paraphrase pairs); once without and once
                         with max_active_dims=16.
  translation_paws.json  SparseTranslationEvaluator, PAWS-Wiki test paraphrases (200 pairs).
  rrf_scifact.json       ReciprocalRankFusionEvaluator: the sparse run = splade-tiny's top 20
                         (dot) over a 300-abstract SciFact pool, the "dense" run = the top 20
                         by shared lowercase words (no dense model is available offline);
                         documents and positives are SciFact document ids.

Reference environment (never inside the repository): sentence-transformers 6.2.0, torch,
scikit-learn, scipy. Run from the repository root (deterministic):
  HF_HUB_OFFLINE=1 PYTHON scripts/parity/generate_evaluator_fixtures.py
  options: [--splade-tiny MODEL_DIR] [--data-dir ../shared/data] [--out fixtures/eval/evaluators]
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import re
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import numpy as np  # noqa: E402
import torch  # noqa: E402

from sentence_transformers import SparseEncoder  # noqa: E402
from sentence_transformers.sparse_encoder.evaluation import (  # noqa: E402
    ReciprocalRankFusionEvaluator,
    SparseEmbeddingSimilarityEvaluator,
    SparseMSEEvaluator,
    SparseRerankingEvaluator,
    SparseTranslationEvaluator,
    SparseTripletEvaluator,
)
from sentence_transformers.util import dot_score  # noqa: E402
from shared_text import to_refs  # fixtures refer to ../shared/data texts, never copy them

REPO_ROOT = Path(__file__).resolve().parents[2]
DEFAULT_SPLADE_TINY = Path.home() / ".cache" / "splade-rs" / "models" / "splade-tiny"
TEXT_CHARS = 400


def read_pairs(path: Path) -> list[tuple[str, str, float]]:
    with open(path, encoding="utf-8", newline="") as f:
        rows = list(csv.reader(f, delimiter="\t", quoting=csv.QUOTE_NONE))
    return [(a, b, float(lab)) for a, b, lab in rows[1:]]


def read_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in open(path, encoding="utf-8") if line.strip()]


def read_qrels(path: Path) -> list[tuple[str, str, int]]:
    rows = [line.rstrip("\n").split("\t") for line in open(path, encoding="utf-8") if line.strip()]
    if rows and rows[0][0] == "query-id":
        rows = rows[1:]
    return [(q, c, int(float(s))) for q, c, s in rows]


def doc_text(x: dict) -> str:
    return ((x["title"] + " " + x["text"]) if x.get("title") else x["text"])[:TEXT_CHARS]


def words(text: str) -> set[str]:
    return set(re.findall(r"\w+", text.lower()))


def floats(d: dict) -> dict:
    return {k: float(v) for k, v in d.items()}


def similarity_fixture(model, rows, name, fn_names, main) -> dict:
    ev = SparseEmbeddingSimilarityEvaluator(
        [a for a, _, _ in rows], [b for _, b, _ in rows], [s for _, _, s in rows],
        main_similarity=main, similarity_fn_names=fn_names, name=name, write_csv=False,
    )
    expected = floats(ev(model))
    return dict(name=name, similarity_fn_names=fn_names, main_similarity=main, pairs=[list(r) for r in rows],
                primary_metric=ev.primary_metric, expected=expected)


def triplet_fixture(model, data: Path) -> dict:
    d = data / "scifact"
    docs = read_jsonl(d / "corpus.jsonl")
    queries = {str(q["_id"]): q["text"] for q in read_jsonl(d / "queries.jsonl")}
    qrels = read_qrels(d / "qrels" / "train.tsv")
    by_id = {str(x["_id"]): x for x in docs}
    pool = docs[:2000]
    pool_words = [(str(x["_id"]), words(doc_text(x))) for x in pool]
    triplets, seen = [], set()
    for q, c, s in qrels:
        if s <= 0 or q in seen or c not in by_id:
            continue
        seen.add(q)
        qw = words(queries[q])
        rel = {cc for qq, cc, ss in qrels if qq == q and ss > 0}
        best = min(((-len(qw & w), i, cid) for i, (cid, w) in enumerate(pool_words) if cid not in rel))
        triplets.append((queries[q], doc_text(by_id[c]), doc_text(by_id[best[2]])))
        if len(triplets) == 150:
            break
    fns = ["cosine", "dot", "euclidean", "manhattan"]
    margin = {"dot": 0.5}
    ev = SparseTripletEvaluator(
        [a for a, _, _ in triplets], [p for _, p, _ in triplets], [n for _, _, n in triplets],
        similarity_fn_names=fns, margin=margin, name="scifact", write_csv=False,
    )
    expected = floats(ev(model))
    return dict(name="scifact", similarity_fn_names=fns, margin=margin, triplets=[list(t) for t in triplets],
                primary_metric=ev.primary_metric, expected=expected)


def scifact_reranking_fixture(model, data: Path) -> dict:
    d = data / "scifact"
    docs = read_jsonl(d / "corpus.jsonl")
    queries = {str(q["_id"]): q["text"] for q in read_jsonl(d / "queries.jsonl")}
    qrels = read_qrels(d / "qrels" / "test.tsv")
    qids = sorted({q for q, _, s in qrels if s > 0}, key=int)[:40]
    relevant: dict[str, list[str]] = {}
    for q, c, s in qrels:
        if q in qids and s > 0:
            relevant.setdefault(q, []).append(c)
    rel_ids = {c for cs in relevant.values() for c in cs}
    by_id = {str(x["_id"]): x for x in docs}
    pool = [x for x in docs if str(x["_id"]) in rel_ids] + [x for x in docs if str(x["_id"]) not in rel_ids][:1000 - len(rel_ids)]
    pool_words = [(str(x["_id"]), words(doc_text(x))) for x in pool]
    samples = []
    for q in qids:
        qw = words(queries[q])
        cands = [(len(qw & w), i, cid) for i, (cid, w) in enumerate(pool_words) if cid not in relevant[q]]
        cands.sort(key=lambda t: (-t[0], t[1]))
        samples.append(dict(
            query=queries[q],
            positive=[doc_text(by_id[c]) for c in relevant[q]],
            negative=[doc_text(by_id[cid]) for _, _, cid in cands[:10]],
        ))
    ev = SparseRerankingEvaluator(samples, name="scifact", write_csv=False)
    expected = floats(ev(model))
    return dict(name="scifact", at_k=10, similarity="cosine", samples=samples, primary_metric=ev.primary_metric,
                expected=expected)


def dl19_reranking_fixture(model, data: Path) -> dict:
    d = data / "mini-msmarco-dl19"
    by_id = {str(x["_id"]): x for x in read_jsonl(d / "corpus.jsonl")}
    queries = {str(q["_id"]): q["text"] for q in read_jsonl(d / "queries.jsonl")}
    qrels = read_qrels(d / "qrels" / "test.tsv")
    samples = []
    for q in queries:
        pos = [c for qq, c, s in qrels if qq == q and s >= 2 and c in by_id][:6]
        neg = [c for qq, c, s in qrels if qq == q and s == 1 and c in by_id][:10]
        if pos and neg:
            samples.append(dict(query=queries[q], positive=[doc_text(by_id[c]) for c in pos],
                                negative=[doc_text(by_id[c]) for c in neg]))
    ev = SparseRerankingEvaluator(samples, at_k=5, name="dl19", similarity_fct=dot_score, write_csv=False)
    expected = floats(ev(model))
    return dict(name="dl19", at_k=5, similarity="dot", samples=samples, primary_metric=ev.primary_metric,
                expected=expected)


def mse_fixture(model, data: Path) -> dict:
    pairs = [(a, b) for a, b, lab in read_pairs(data / "mrpc" / "test" / "pairs.tsv") if lab == 1][:150]
    src, trg = [a for a, _ in pairs], [b for _, b in pairs]
    cases = []
    for mad in (None, 16):
        ev = SparseMSEEvaluator(src, trg, teacher_model=model, name="mrpc", write_csv=False, max_active_dims=mad)
        cases.append(dict(max_active_dims=mad, primary_metric=ev.primary_metric, expected=floats(ev(model))))
    return dict(name="mrpc", source_sentences=src, target_sentences=trg, cases=cases)


def translation_fixture(model, data: Path) -> dict:
    pairs = [(a, b) for a, b, lab in read_pairs(data / "paws-wiki" / "test" / "pairs.tsv") if lab == 1][:200]
    ev = SparseTranslationEvaluator([a for a, _ in pairs], [b for _, b in pairs], name="paws", write_csv=False)
    expected = floats(ev(model))
    return dict(name="paws", pairs=[list(p) for p in pairs], primary_metric=ev.primary_metric, expected=expected)


def rrf_fixture(model, data: Path) -> dict:
    d = data / "scifact"
    docs = read_jsonl(d / "corpus.jsonl")
    queries = {str(q["_id"]): q["text"] for q in read_jsonl(d / "queries.jsonl")}
    qrels = read_qrels(d / "qrels" / "test.tsv")
    qids = sorted({q for q, _, s in qrels if s > 0}, key=int)[50:110]
    relevant: dict[str, list[str]] = {}
    for q, c, s in qrels:
        if q in qids and s > 0:
            relevant.setdefault(q, []).append(c)
    rel_ids = {c for cs in relevant.values() for c in cs}
    pool = [x for x in docs if str(x["_id"]) in rel_ids] + [x for x in docs if str(x["_id"]) not in rel_ids][:300 - len(rel_ids)]
    texts = [doc_text(x) for x in pool]
    ids = [str(x["_id"]) for x in pool]
    doc_emb = model.encode_document(texts, convert_to_tensor=True).to_dense()
    q_emb = model.encode_query([queries[q] for q in qids], convert_to_tensor=True).to_dense()
    scores = q_emb @ doc_emb.T
    pool_words = [words(t) for t in texts]
    dense, sparse = [], []
    for i, q in enumerate(qids):
        order = sorted(range(len(texts)), key=lambda j: (-float(scores[i, j]), j))[:20]
        qw = words(queries[q])
        lex = sorted(range(len(texts)), key=lambda j: (-len(qw & pool_words[j]), j))[:20]
        positive = list(relevant[q])
        sparse.append(dict(query_id=q, query=queries[q], positive=positive, documents=[ids[j] for j in order]))
        dense.append(dict(query_id=q, query=queries[q], positive=positive, documents=[ids[j] for j in lex]))
    ev = ReciprocalRankFusionEvaluator(dense, sparse, name="scifact", write_csv=False)
    expected = floats(ev())
    ev5 = ReciprocalRankFusionEvaluator(dense, sparse, at_k=5, rrf_k=10, write_csv=False)
    expected5 = floats(ev5())
    return dict(name="scifact", dense_samples=dense, sparse_samples=sparse, primary_metric=ev.primary_metric,
                expected=expected, expected_at5_rrf10=expected5)


def with_key_order(obj):
    """JSON readers may sort object keys: record each `expected*` dictionary's key order."""
    if isinstance(obj, list):
        return [with_key_order(x) for x in obj]
    if not isinstance(obj, dict):
        return obj
    out = {}
    for k, v in obj.items():
        out[k] = with_key_order(v)
        if k.startswith("expected") and isinstance(v, dict):
            out[f"{k}_keys"] = list(v.keys())
    return out


def correlation_fixture() -> dict:
    """scipy's pearsonr / spearmanr on float32 scores with many exact ties (the rank metric
    alone, without encoder noise)."""
    from scipy.stats import pearsonr, spearmanr

    rng = np.random.default_rng(7)
    cases = []
    for n in (2, 5, 40, 300):
        labels = [float(x) for x in rng.choice([0.0, 0.5, 1.25, 2.0, 3.8, 5.0], size=n)]
        scores = rng.choice([0.0, 0.125, 0.3, 0.3, 0.7, 1.5, 2.25], size=n).astype(np.float32)
        scores = [float(x) for x in scores]
        cases.append(dict(labels=labels, scores=scores, pearson=float(pearsonr(labels, scores)[0]),
                          spearman=float(spearmanr(labels, scores)[0])))
    return {"cases": cases}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--splade-tiny", type=Path, default=DEFAULT_SPLADE_TINY)
    ap.add_argument("--data-dir", type=Path, default=REPO_ROOT.parent / "shared" / "data")
    ap.add_argument("--out", type=Path, default=REPO_ROOT / "fixtures" / "eval" / "evaluators")
    ap.add_argument("--only", default="", help="comma-separated fixture names to regenerate")
    args = ap.parse_args()
    if not args.splade_tiny.is_dir():
        ap.error(f"{args.splade_tiny} does not exist (run `splade info` once to fetch splade-tiny)")
    args.out.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(0)
    model = SparseEncoder(str(args.splade_tiny), device="cpu")
    data = args.data_dir
    only = {x for x in args.only.split(",") if x}

    def dump(name: str, make) -> None:
        if only and name not in only:
            return
        obj = with_key_order(make())
        (args.out / f"{name}.json").write_text(json.dumps(to_refs(obj), ensure_ascii=False) + "\n", encoding="utf-8")
        print(f"wrote {args.out / name}.json")

    stsb = read_pairs(data / "stsb" / "dev" / "pairs.tsv")[:300]
    sick = read_pairs(data / "sick" / "test" / "pairs.tsv")[:300]
    four = ["cosine", "dot", "euclidean", "manhattan"]
    dump("correlation_scores", correlation_fixture)
    dump("similarity_stsb", lambda: similarity_fixture(model, stsb, "sts_dev", four, "cosine"))
    dump("similarity_sick", lambda: similarity_fixture(model, sick, "", None, None))
    dump("triplet_scifact", lambda: triplet_fixture(model, data))
    dump("reranking_scifact", lambda: scifact_reranking_fixture(model, data))
    dump("reranking_dl19", lambda: dl19_reranking_fixture(model, data))
    dump("mse_mrpc", lambda: mse_fixture(model, data))
    dump("translation_paws", lambda: translation_fixture(model, data))
    dump("rrf_scifact", lambda: rrf_fixture(model, data))


if __name__ == "__main__":
    main()
