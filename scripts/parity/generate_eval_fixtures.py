#!/usr/bin/env python3
"""Generate evaluator parity fixtures for splade-rs (crates/eval) from sentence-transformers 6.2.

What it writes (under fixtures/eval/ of the repository):
  binary_scores.json   random float32 scores with many ties + 0/1 labels; expected metrics from
                       ST's BinaryClassificationEvaluator.find_best_* (current semantics), the
                       same functions of ST < 5.7 (legacy semantics, copied below verbatim) and
                       scikit-learn's average_precision_score / matthews_corrcoef.
  binary_synthetic.json  sparse embeddings with dyadic weights (exact, tie-rich scores) for
                       sentence pairs; expected = SparseBinaryClassificationEvaluator(...)(model)
                       with model.encode monkeypatched to return those embeddings.
  ir_synthetic.json    queries, corpus (ids whose string order differs from file order), graded
                       qrels and dyadic sparse embeddings; expected =
                       SparseInformationRetrievalEvaluator(..., corpus_chunk_size=7)(model) with
                       encode_query / encode_document monkeypatched (exercises torch.topk,
                       boundary ties, chunk merging).
  binary_real.json     the first 200 Quora test pairs; expected = the real evaluator on splade-tiny.
  ir_real.json         a SciFact subset (60 test queries, 300 documents, texts cut to 600 chars);
                       expected = the real IR evaluator on splade-tiny.

Reference environment (never inside the repository):
  python3 -m venv DIR && DIR/bin/pip install sentence-transformers==6.2.0 torch scikit-learn
Run from the repository root (deterministic):
  HF_HUB_OFFLINE=1 DIR/bin/python scripts/parity/generate_eval_fixtures.py
  options: [--splade-tiny MODEL_DIR] [--data-dir ../shared/data] [--out fixtures/eval]
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import random
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import numpy as np  # noqa: E402
import torch  # noqa: E402
from sklearn.metrics import average_precision_score, matthews_corrcoef  # noqa: E402

from shared_text import to_refs  # fixtures refer to ../shared/data texts, never copy them  # noqa: E402
from sentence_transformers import SparseEncoder  # noqa: E402
from sentence_transformers.sentence_transformer.evaluation.binary_classification import (  # noqa: E402
    BinaryClassificationEvaluator,
)
from sentence_transformers.sparse_encoder.evaluation import (  # noqa: E402
    SparseBinaryClassificationEvaluator,
    SparseInformationRetrievalEvaluator,
)

REPO_ROOT = Path(__file__).resolve().parents[2]
DEFAULT_SPLADE_TINY = Path.home() / ".cache" / "splade-rs" / "models" / "splade-tiny"
VOCAB = 30522


# ---- ST < 5.7 threshold search (sentence_transformers/evaluation/BinaryClassificationEvaluator.py,
# ---- copied verbatim from the 5.x source; ST 6.2 no longer ships it)
def legacy_find_best_acc_and_threshold(scores, labels, high_score_more_similar: bool):
    assert len(scores) == len(labels)
    rows = list(zip(scores, labels))
    rows = sorted(rows, key=lambda x: x[0], reverse=high_score_more_similar)
    max_acc = 0
    best_threshold = -1
    positive_so_far = 0
    remaining_negatives = sum(labels == 0)
    for i in range(len(rows) - 1):
        score, label = rows[i]
        if label == 1:
            positive_so_far += 1
        else:
            remaining_negatives -= 1
        acc = (positive_so_far + remaining_negatives) / len(labels)
        if acc > max_acc:
            max_acc = acc
            best_threshold = (rows[i][0] + rows[i + 1][0]) / 2
    return max_acc, best_threshold


def legacy_find_best_f1_and_threshold(scores, labels, high_score_more_similar: bool):
    assert len(scores) == len(labels)
    scores = np.asarray(scores)
    labels = np.asarray(labels)
    rows = list(zip(scores, labels))
    rows = sorted(rows, key=lambda x: x[0], reverse=high_score_more_similar)
    best_f1 = best_precision = best_recall = 0
    threshold = 0
    nextract = 0
    ncorrect = 0
    total_num_duplicates = sum(labels)
    for i in range(len(rows) - 1):
        score, label = rows[i]
        nextract += 1
        if label == 1:
            ncorrect += 1
        if ncorrect > 0:
            precision = ncorrect / nextract
            recall = ncorrect / total_num_duplicates
            f1 = 2 * precision * recall / (precision + recall)
            if f1 > best_f1:
                best_f1 = f1
                best_precision = precision
                best_recall = recall
                threshold = (rows[i][0] + rows[i + 1][0]) / 2
    return best_f1, best_precision, best_recall, threshold


def metrics_from_scores(scores: np.ndarray, labels: np.ndarray, greater: bool, legacy: bool) -> dict:
    """The body of BinaryClassificationEvaluator.compute_metrics for one similarity function."""
    if legacy:
        acc, acc_t = legacy_find_best_acc_and_threshold(scores, labels, greater)
        f1, p, r, f1_t = legacy_find_best_f1_and_threshold(scores, labels, greater)
    else:
        acc, acc_t = BinaryClassificationEvaluator.find_best_acc_and_threshold(scores, labels, greater)
        f1, p, r, f1_t = BinaryClassificationEvaluator.find_best_f1_and_threshold(scores, labels, greater)
    ap = average_precision_score(labels, scores * (1 if greater else -1))
    predicted = (scores >= f1_t) if greater else (scores <= f1_t)
    mcc = matthews_corrcoef(labels, predicted)
    out = dict(accuracy=acc, accuracy_threshold=acc_t, f1=f1, f1_threshold=f1_t, precision=p, recall=r, ap=ap, mcc=mcc)
    return {k: float(v) for k, v in out.items()}


def binary_scores_fixture(rng: random.Random) -> dict:
    cases = []
    for case in range(6):
        n = [1, 2, 7, 40, 300, 500][case]
        labels = np.array([1 if rng.random() < 0.4 else 0 for _ in range(n)])
        if case == 2:
            labels[:] = 0  # no positives
        # few distinct values -> heavy ties; mix in negative values
        scores = np.array([rng.choice([-1.5, -0.25, 0.0, 0.1, 0.3, 0.7, 0.7, 2.5, 10.0]) + (rng.randint(0, 3) * 0.125) for _ in range(n)], dtype=np.float32)
        for greater in (True, False):
            for legacy in (False, True):
                cases.append(
                    dict(
                        scores=[float(s) for s in scores],
                        labels=[int(x) for x in labels],
                        greater_is_better=greater,
                        legacy=legacy,
                        expected=metrics_from_scores(scores, labels, greater, legacy),
                    )
                )
    return {"cases": cases}


def dyadic_sparse(rng: random.Random, n: int, dim_used: int, max_nnz: int) -> list[tuple[list[int], list[float]]]:
    out = []
    for _ in range(n):
        k = rng.randint(0, max_nnz)
        idx = sorted(rng.sample(range(dim_used), k))
        vals = [rng.choice([0.5, 1.0, 1.5, 2.0]) for _ in idx]
        out.append((idx, vals))
    return out


def to_sparse(rows: list[tuple[list[int], list[float]]]) -> torch.Tensor:
    r, c, v = [], [], []
    for i, (idx, vals) in enumerate(rows):
        r += [i] * len(idx)
        c += idx
        v += vals
    return torch.sparse_coo_tensor(torch.tensor([r, c], dtype=torch.long).reshape(2, -1), torch.tensor(v, dtype=torch.float32), (len(rows), VOCAB)).coalesce()


def patch_encode(model: SparseEncoder, table: dict[str, tuple[list[int], list[float]]]) -> None:
    def fake(sentences, **kwargs):
        return to_sparse([table[s] for s in sentences])

    model.encode = fake
    model.encode_query = fake
    model.encode_document = fake


def binary_synthetic_fixture(rng: random.Random, model: SparseEncoder) -> dict:
    n_sent = 60
    sentences = [f"s{i}" for i in range(n_sent)]
    emb = dyadic_sparse(rng, n_sent, 12, 4)
    table = dict(zip(sentences, emb))
    pairs = [(rng.choice(sentences), rng.choice(sentences)) for _ in range(250)]
    labels = [1 if rng.random() < 0.45 else 0 for _ in pairs]
    patch_encode(model, table)
    ev = SparseBinaryClassificationEvaluator(
        [a for a, _ in pairs], [b for _, b in pairs], labels, name="synthetic",
        similarity_fn_names=["cosine", "dot", "euclidean", "manhattan"], write_csv=False,
    )
    expected = {k: float(v) for k, v in ev(model).items()}
    return dict(
        name="synthetic",
        embeddings={s: {"indices": i, "values": v} for s, (i, v) in table.items()},
        sentences1=[a for a, _ in pairs], sentences2=[b for _, b in pairs], labels=labels, expected=expected,
    )


def ir_synthetic_fixture(rng: random.Random, model: SparseEncoder) -> dict:
    n_docs, n_q = 45, 25
    # ids whose string order differs from file order ("d10" < "d2")
    corpus = [(f"d{rng.randint(0, 999)}x{i}", f"doc {i}") for i in range(n_docs)]
    queries = [(f"q{i}", f"query {i}") for i in range(n_q)]
    d_emb = dyadic_sparse(rng, n_docs, 8, 3)
    q_emb = dyadic_sparse(rng, n_q, 8, 3)
    for j in range(0, n_docs, 9):  # exact duplicates -> equal scores for every query
        d_emb[j + 1] = d_emb[j]
    table = {t: e for (_, t), e in zip(corpus, d_emb)} | {t: e for (_, t), e in zip(queries, q_emb)}
    qrels = []
    for qid, _ in queries[:-3]:  # the last 3 queries get no qrels
        for cid, _ in rng.sample(corpus, rng.randint(1, 6)):
            qrels.append((qid, cid, rng.choice([0, 1, 2])))
    relevant: dict[str, set[str]] = {}
    for qid, cid, s in qrels:
        if s > 0:
            relevant.setdefault(qid, set()).add(cid)
    patch_encode(model, table)
    ev = SparseInformationRetrievalEvaluator(
        dict(queries), dict(corpus), relevant, corpus_chunk_size=7, name="synthetic",
        mrr_at_k=[3, 10], ndcg_at_k=[5, 10], accuracy_at_k=[1, 3, 5, 10], precision_recall_at_k=[1, 3, 5, 10],
        map_at_k=[20], write_csv=False,
    )
    expected = {k: float(v) for k, v in ev(model).items()}
    return dict(
        name="synthetic", corpus=corpus, queries=queries, qrels=qrels,
        cutoffs=dict(accuracy_at_k=[1, 3, 5, 10], precision_recall_at_k=[1, 3, 5, 10], mrr_at_k=[3, 10], ndcg_at_k=[5, 10], map_at_k=[20]),
        embeddings={t: {"indices": i, "values": v} for t, (i, v) in table.items()}, expected=expected,
    )


def read_pairs(path: Path) -> list[tuple[str, str, int]]:
    with open(path, encoding="utf-8", newline="") as f:
        rows = list(csv.reader(f, delimiter="\t", quoting=csv.QUOTE_NONE))
    return [(a, b, int(float(lab))) for a, b, lab in rows[1:]]


def binary_real_fixture(model: SparseEncoder, data: Path) -> dict:
    pairs = read_pairs(data / "quora-pairs" / "test" / "pairs.tsv")[:200]
    ev = SparseBinaryClassificationEvaluator(
        [a for a, _, _ in pairs], [b for _, b, _ in pairs], [l for _, _, l in pairs], name="quora",
        similarity_fn_names=["cosine", "dot", "euclidean", "manhattan"], write_csv=False,
    )
    expected = {k: float(v) for k, v in ev(model).items()}
    return dict(name="quora", pairs=[list(p) for p in pairs], expected=expected)


def ir_real_fixture(model: SparseEncoder, data: Path, rng: random.Random) -> dict:
    d = data / "scifact"
    docs = [json.loads(line) for line in open(d / "corpus.jsonl", encoding="utf-8") if line.strip()]
    queries = [json.loads(line) for line in open(d / "queries.jsonl", encoding="utf-8") if line.strip()]
    qrels = [line.rstrip("\n").split("\t") for line in open(d / "qrels" / "test.tsv", encoding="utf-8")][1:]
    qids = sorted({q for q, _, s in qrels if float(s) > 0}, key=lambda x: int(x))[:60]
    rel_docs = {c for q, c, s in qrels if q in qids and float(s) > 0}
    keep = [x for x in docs if x["_id"] in rel_docs]
    others = [x for x in docs if x["_id"] not in rel_docs]
    keep += rng.sample(others, 300 - len(keep))
    rng.shuffle(keep)
    text = lambda x: ((x["title"] + " " + x["text"]) if x.get("title") else x["text"])[:600]  # noqa: E731
    corpus = [(str(x["_id"]), text(x)) for x in keep]
    qtexts = {str(q["_id"]): q["text"] for q in queries}
    qlist = [(q, qtexts[q]) for q in qids]
    qrel_rows = [(q, c, int(s)) for q, c, s in qrels if q in qids]
    relevant: dict[str, set[str]] = {}
    for q, c, s in qrel_rows:
        if s > 0:
            relevant.setdefault(q, set()).add(c)
    ev = SparseInformationRetrievalEvaluator(dict(qlist), dict(corpus), relevant, name="scifact", write_csv=False)
    expected = {k: float(v) for k, v in ev(model).items()}
    return dict(name="scifact", corpus=corpus, queries=qlist, qrels=qrel_rows, expected=expected)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--splade-tiny", type=Path, default=DEFAULT_SPLADE_TINY)
    ap.add_argument("--data-dir", type=Path, default=REPO_ROOT.parent / "shared" / "data")
    ap.add_argument("--out", type=Path, default=REPO_ROOT / "fixtures" / "eval")
    args = ap.parse_args()
    if not args.splade_tiny.is_dir():
        ap.error(f"{args.splade_tiny} does not exist (run `splade info` once to fetch splade-tiny)")
    args.out.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(0)

    def dump(name: str, obj: dict) -> None:
        (args.out / name).write_text(json.dumps(to_refs(obj), ensure_ascii=False, indent=None, sort_keys=False) + "\n", encoding="utf-8")
        print(f"wrote {args.out / name}")

    dump("binary_scores.json", binary_scores_fixture(random.Random(1)))
    fake = SparseEncoder(str(args.splade_tiny), device="cpu")
    dump("binary_synthetic.json", binary_synthetic_fixture(random.Random(2), fake))
    fake = SparseEncoder(str(args.splade_tiny), device="cpu")
    dump("ir_synthetic.json", ir_synthetic_fixture(random.Random(3), fake))
    model = SparseEncoder(str(args.splade_tiny), device="cpu")
    dump("binary_real.json", binary_real_fixture(model, args.data_dir))
    dump("ir_real.json", ir_real_fixture(model, args.data_dir, random.Random(4)))


if __name__ == "__main__":
    main()
