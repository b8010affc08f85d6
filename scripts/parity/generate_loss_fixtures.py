#!/usr/bin/env python3
"""Parity fixtures of the other sparse losses of sentence-transformers 6.2, each wrapped in
SpladeLoss as sentence-transformers requires: loss parts, per-parameter gradient norms and the
weights after 3 AdamW steps (the schema of generate_train_fixtures.py), on real rows of
../shared/data and the tiny random fixture model. crates/train/tests/losses.rs compares.

Cases (fixtures/train/losses/<case>.json):
  cosine_similarity  SparseCosineSimilarityLoss, 6 STS-B train pairs, labels = score / 5.
  cosent             SparseCoSENTLoss (scale 20), the same pairs (two equal labels included).
  cosent_scale1      the same with scale 1 (the scale amplifies float differences; see the
                     tolerances in crates/train/tests/losses.rs).
  angle              SparseAnglELoss (scale 20), the same pairs.
  triplet            SparseTripletLoss (Euclidean distance, margin 5), 4 SciFact train
                     (query, relevant abstract, most word-sharing non-relevant abstract) triplets.
  triplet_cosine     SparseTripletLoss with TripletDistanceMetric.COSINE, margin 0.05.
  distill_kl_div     SparseDistillKLDivLoss (temperature 2): query, relevant abstract and two
                     hard negatives; labels = splade-tiny's dot scores of each candidate.
  mse                SparseMSELoss: 4 MRPC sentences, labels = splade-tiny's embeddings of them
                     (stored sparse), SpladeLoss(use_document_regularizer_only=True) as one
                     column needs. The teacher embeddings are passed to the loss as a list of
                     one tensor per column: a plain (batch, vocab) tensor reaches
                     EmbedDistillLoss.compute_loss_from_embeddings through SpladeLoss unchanged
                     and is zipped row by row there (every student row against teacher row 0),
                     a quirk of 6.2 this script records in `quirk_plain_tensor_loss`.

Texts are cut to 200 characters (the fixture model is tiny; the rows stay real).
Run from the repository root with the reference environment:
  HF_HUB_OFFLINE=1 PYTHON scripts/parity/generate_loss_fixtures.py [--data-dir ../shared/data]
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

import torch  # noqa: E402
from shared_text import to_refs  # fixtures refer to ../shared/data texts, never copy them  # noqa: E402
from sentence_transformers import SparseEncoder  # noqa: E402
from sentence_transformers.sentence_transformer.losses import TripletDistanceMetric  # noqa: E402
from sentence_transformers.sparse_encoder.losses import (  # noqa: E402
    SparseAnglELoss,
    SparseCoSENTLoss,
    SparseCosineSimilarityLoss,
    SparseDistillKLDivLoss,
    SparseMSELoss,
    SparseTripletLoss,
    SpladeLoss,
)

REPO = Path(__file__).resolve().parents[2]
MODEL = REPO / "fixtures/encoder/models/distilbert-tied-seedlayout"
SPLADE_TINY = Path.home() / ".cache" / "splade-rs" / "models" / "splade-tiny"
OUT = REPO / "fixtures/train/losses"
ADAMW = {"lr": 1e-2, "betas": [0.9, 0.999], "eps": 1e-8, "weight_decay": 0.01, "steps": 3}
CHARS = 200


def hf_name(name: str) -> str:
    return name.split(".model.", 1)[1] if ".model." in name else name


def read_pairs(path: Path) -> list[tuple[str, str, float]]:
    with open(path, encoding="utf-8", newline="") as f:
        rows = list(csv.reader(f, delimiter="\t", quoting=csv.QUOTE_NONE))
    return [(a, b, float(lab)) for a, b, lab in rows[1:]]


def read_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in open(path, encoding="utf-8") if line.strip()]


def words(text: str) -> set[str]:
    return set(re.findall(r"\w+", text.lower()))


def scifact_rows(data: Path, n: int, negatives: int) -> list[list[str]]:
    d = data / "scifact"
    docs = read_jsonl(d / "corpus.jsonl")[:2000]
    text = {str(x["_id"]): ((x["title"] + " " + x["text"]) if x.get("title") else x["text"])[:CHARS] for x in docs}
    queries = {str(q["_id"]): q["text"] for q in read_jsonl(d / "queries.jsonl")}
    qrels = [line.rstrip("\n").split("\t") for line in open(d / "qrels" / "train.tsv", encoding="utf-8")][1:]
    rows, seen = [], set()
    for q, c, s in qrels:
        if float(s) <= 0 or q in seen or c not in text:
            continue
        seen.add(q)
        rel = {cc for qq, cc, _ in qrels if qq == q}
        qw = words(queries[q])
        ranked = sorted((cid for cid in text if cid not in rel), key=lambda cid: -len(qw & words(text[cid])))
        rows.append([queries[q], text[c], *[text[cid] for cid in ranked[:negatives]]])
        if len(rows) == n:
            break
    return rows


def run_case(name: str, make_loss, columns: list[list[str]], labels, splade_kwargs: dict, extra: dict) -> dict:
    torch.manual_seed(0)
    model = SparseEncoder(str(MODEL), device="cpu")
    model.train()
    for module in model.modules():
        if isinstance(module, torch.nn.Dropout):
            module.p = 0.0
    loss_fn = SpladeLoss(model, make_loss(model), **splade_kwargs)
    features = [model.tokenize(list(col)) for col in columns]

    def forward():
        parts = loss_fn(features, labels)
        return sum(parts.values()), parts

    params = [(hf_name(n), p) for n, p in model.named_parameters()]
    total, parts = forward()
    total.backward()
    result = {
        "case": name,
        "config": splade_kwargs,
        "texts": columns,
        "loss": {"total": float(total), **{k: float(v) for k, v in parts.items()}},
        "grad_norms": {n: float(p.grad.double().norm()) for n, p in params if p.grad is not None},
        "grad_heads": {n: [float(x) for x in p.grad.flatten()[:16]] for n, p in params if p.grad is not None},
        **extra,
    }
    opt = torch.optim.AdamW([p for _, p in params], lr=ADAMW["lr"], betas=tuple(ADAMW["betas"]), eps=ADAMW["eps"],
                            weight_decay=ADAMW["weight_decay"])
    losses = []
    for _ in range(ADAMW["steps"]):
        opt.zero_grad()
        total, _ = forward()
        losses.append(float(total))
        total.backward()
        opt.step()
    result["adamw"] = {**ADAMW, "losses": losses, "weights": {
        n: {"sum": float(p.detach().double().sum()), "head": [float(x) for x in p.detach().flatten()[:16]]}
        for n, p in params
    }}
    result["versions"] = {"sentence_transformers": __import__("sentence_transformers").__version__,
                          "torch": torch.__version__}
    return result


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--data-dir", type=Path, default=REPO.parent / "shared" / "data")
    ap.add_argument("--splade-tiny", type=Path, default=SPLADE_TINY)
    args = ap.parse_args()
    OUT.mkdir(parents=True, exist_ok=True)
    data = args.data_dir
    lambdas = {"query_regularizer_weight": 0.05, "document_regularizer_weight": 0.03}

    sts = read_pairs(data / "stsb" / "train" / "pairs.tsv")
    # six pairs, two of them with equal scores (CoSENT must not rank equal labels)
    picked = sts[:5]
    same = next(r for r in sts[5:] if r[2] == picked[0][2])
    picked.append(same)
    pair_cols = [[a[:CHARS] for a, _, _ in picked], [b[:CHARS] for _, b, _ in picked]]
    scores = [s / 5.0 for _, _, s in picked]
    pair_labels = torch.tensor(scores)

    triplets = scifact_rows(data, 4, 1)
    trip_cols = [list(c) for c in zip(*triplets)]
    kl_rows = scifact_rows(data, 4, 2)
    kl_cols = [list(c) for c in zip(*kl_rows)]
    teacher = SparseEncoder(str(args.splade_tiny), device="cpu")
    with torch.no_grad():
        q = teacher.encode_query(kl_cols[0], convert_to_tensor=True).to_dense()
        cand = [teacher.encode_document(c, convert_to_tensor=True).to_dense() for c in kl_cols[1:]]
        kl_scores = torch.stack([(q * c).sum(-1) for c in cand], dim=1)

    mrpc = read_pairs(data / "mrpc" / "train" / "pairs.tsv")[:4]
    mse_col = [a[:CHARS] for a, _, _ in mrpc]
    with torch.no_grad():
        teacher_emb = teacher.encode(mse_col, convert_to_tensor=True).to_dense()
    sparse_labels = []
    for row in teacher_emb:
        idx = torch.nonzero(row).flatten()
        sparse_labels.append({"indices": [int(i) for i in idx], "values": [float(row[i]) for i in idx]})

    cases = {
        "cosine_similarity": (SparseCosineSimilarityLoss, pair_cols, pair_labels, lambdas,
                              {"labels": scores, "loss_name": "cosine_similarity"}),
        "cosent": (SparseCoSENTLoss, pair_cols, pair_labels, lambdas, {"labels": scores, "loss_name": "cosent", "scale": 20.0}),
        "cosent_scale1": (lambda m: SparseCoSENTLoss(m, scale=1.0), pair_cols, pair_labels, lambdas,
                          {"labels": scores, "loss_name": "cosent", "scale": 1.0}),
        "angle": (SparseAnglELoss, pair_cols, pair_labels, lambdas, {"labels": scores, "loss_name": "angle", "scale": 20.0}),
        "triplet": (SparseTripletLoss, trip_cols, None, lambdas,
                    {"labels": None, "loss_name": "triplet", "distance": "euclidean", "margin": 5.0}),
        "triplet_cosine": (lambda m: SparseTripletLoss(m, distance_metric=TripletDistanceMetric.COSINE, triplet_margin=0.05),
                           trip_cols, None, lambdas,
                           {"labels": None, "loss_name": "triplet", "distance": "cosine", "margin": 0.05}),
        "distill_kl_div": (SparseDistillKLDivLoss, kl_cols, kl_scores, lambdas,
                           {"labels": kl_scores.tolist(), "loss_name": "distill_kl_div", "temperature": 2.0}),
        "mse": (SparseMSELoss, [mse_col], [teacher_emb], {"document_regularizer_weight": 0.03,
                                                          "use_document_regularizer_only": True},
                {"labels_sparse": sparse_labels, "labels_dim": int(teacher_emb.shape[1]), "loss_name": "mse"}),
    }
    for name, (make_loss, cols, labels, kwargs, extra) in cases.items():
        res = run_case(name, make_loss, cols, labels, kwargs, extra)
        if name == "mse":
            torch.manual_seed(0)
            model = SparseEncoder(str(MODEL), device="cpu")
            model.train()
            for module in model.modules():
                if isinstance(module, torch.nn.Dropout):
                    module.p = 0.0
            plain = SpladeLoss(model, SparseMSELoss(model), **kwargs)(
                [model.tokenize(c) for c in cols], teacher_emb)
            res["quirk_plain_tensor_loss"] = {k: float(v) for k, v in plain.items()}
        (OUT / f"{name}.json").write_text(json.dumps(to_refs(res), indent=None, sort_keys=True) + "\n")
        print(name, res["loss"])


if __name__ == "__main__":
    main()
