#!/usr/bin/env python3
"""Training parity fixtures: SpladeLoss parts, per-parameter gradient norms and weights after
3 AdamW steps, computed by sentence-transformers 6.x / PyTorch on a fixed tiny model and fixed
batches. The Rust tests in crates/train/tests/ compare against fixtures/train/*.json.

Run from the repo root (venv as in generate_encoder_fixtures.py):
  HF_HUB_OFFLINE=1 /path/to/venv/bin/python scripts/parity/generate_train_fixtures.py

The model is fixtures/encoder/models/distilbert-tied-seedlayout (random DistilBertForMaskedLM,
hidden 8, tied decoder), except for the cases naming another "model": the RoBERTa,
XLM-RoBERTa and ModernBERT fixtures of generate_backbone_fixtures.py. Dropout is set to 0:
gradients are compared on the deterministic forward pass.

  [CASE ...]   only write these cases (default: all)
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

import torch
from sentence_transformers import SparseEncoder
from sentence_transformers.sparse_encoder.losses import SparseMarginMSELoss, SparseMultipleNegativesRankingLoss, SpladeLoss

REPO = Path(__file__).resolve().parents[2]
MODEL = REPO / "fixtures/encoder/models/distilbert-tied-seedlayout"
OUT = REPO / "fixtures/train"

# Real Quora-style triplets (anchor, positive duplicate, hard negative).
BATCH = [
    ("How can I learn to code fast?", "What is the fastest way to learn programming?", "How do I learn to cook fast?"),
    ("Why is the sky blue?", "What makes the sky look blue?", "Why is the ocean salty?"),
    ("What are the best books on machine learning?", "Which machine learning books should I read?",
     "What are the best books on world history?"),
    ("How do I lose weight without exercise?", "Can you lose weight without working out?", "How do I gain muscle fast?"),
]

CASES = {
    # The seed's regulariser weights, and large ones so the FLOPS gradients are visible.
    "seed_lambdas": {"lambda_query": 5e-5, "lambda_document": 3e-5, "with_negatives": True},
    "large_lambdas": {"lambda_query": 0.5, "lambda_document": 0.3, "with_negatives": True},
    "pairs_only": {"lambda_query": 0.05, "lambda_document": 0.03, "with_negatives": False},
    # SpladeLoss(SparseMarginMSELoss): distillation onto teacher scores [positive, negative]
    # per row (turned into margins by the loss), with visible FLOPS weights.
    "margin_mse": {"lambda_query": 0.05, "lambda_document": 0.03, "with_negatives": True, "loss": "margin_mse"},
    # The other backbone families (tiny random models with their own tokenizers).
    "roberta": {"lambda_query": 0.05, "lambda_document": 0.03, "with_negatives": True,
                "model": "fixtures/encoder/models/roberta-bpe-v6"},
    "xlm_roberta": {"lambda_query": 0.05, "lambda_document": 0.03, "with_negatives": True,
                    "model": "fixtures/encoder/models/xlm-roberta-unigram-v6"},
    "modernbert": {"lambda_query": 0.05, "lambda_document": 0.03, "with_negatives": True,
                   "model": "fixtures/encoder/models/modernbert-bpe-v6"},
}
# Teacher scores (positive, negative) per row of BATCH for the distillation case.
TEACHER_SCORES = [[9.5, 2.0], [7.25, 4.0], [8.0, 1.5], [6.0, 5.5]]
ADAMW = {"lr": 1e-2, "betas": [0.9, 0.999], "eps": 1e-8, "weight_decay": 0.01, "steps": 3}


def hf_name(name: str) -> str:
    # "0.model.distilbert.embeddings..." -> "distilbert.embeddings..."
    return name.split(".model.", 1)[1] if ".model." in name else name


def run_case(cfg: dict) -> dict:
    torch.manual_seed(0)
    model = SparseEncoder(str(REPO / cfg["model"]) if "model" in cfg else str(MODEL), device="cpu")
    # Training mode (SpladePooling's eval path works in place and cannot backpropagate), with
    # every dropout set to 0 so the forward pass is deterministic.
    model.train()
    for module in model.modules():
        if isinstance(module, torch.nn.Dropout):
            module.p = 0.0
    distill = cfg.get("loss") == "margin_mse"
    base = SparseMarginMSELoss(model) if distill else SparseMultipleNegativesRankingLoss(model)
    loss_fn = SpladeLoss(model, base, document_regularizer_weight=cfg["lambda_document"],
                         query_regularizer_weight=cfg["lambda_query"])
    columns = list(zip(*BATCH)) if cfg["with_negatives"] else list(zip(*BATCH))[:2]
    features = [model.tokenize(list(col)) for col in columns]
    labels = torch.tensor(TEACHER_SCORES) if distill else torch.zeros(len(BATCH))

    def forward():
        parts = loss_fn(features, labels)
        total = sum(parts.values())
        return total, parts

    params = [(hf_name(n), p) for n, p in model.named_parameters()]
    total, parts = forward()
    total.backward()
    grad_norms = {n: float(p.grad.double().norm()) for n, p in params if p.grad is not None}
    result = {
        "config": cfg,
        "texts": [list(c) for c in columns],
        "labels": TEACHER_SCORES if distill else None,
        "loss": {"total": float(total), **{k: float(v) for k, v in parts.items()}},
        "grad_norms": grad_norms,
    }

    opt = torch.optim.AdamW([p for _, p in params], lr=ADAMW["lr"], betas=tuple(ADAMW["betas"]), eps=ADAMW["eps"],
                            weight_decay=ADAMW["weight_decay"])
    opt.zero_grad()
    losses = []
    for _ in range(ADAMW["steps"]):
        opt.zero_grad()
        total, _ = forward()
        losses.append(float(total))
        total.backward()
        opt.step()
    result["adamw"] = {**ADAMW, "losses": losses, "weights": {
        n: {"sum": float(p.detach().double().sum()), "sumsq": float(p.detach().double().pow(2).sum()),
            "head": [float(x) for x in p.detach().flatten()[:16]]}
        for n, p in params
    }}
    return result


def main() -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    only = sys.argv[1:]
    for name, cfg in CASES.items():
        if only and name not in only:
            continue
        res = run_case(cfg)
        res["versions"] = {"sentence_transformers": __import__("sentence_transformers").__version__,
                           "torch": torch.__version__}
        (OUT / f"{name}.json").write_text(json.dumps(res, indent=1, sort_keys=True) + "\n")
        print(name, res["loss"])


if __name__ == "__main__":
    main()
