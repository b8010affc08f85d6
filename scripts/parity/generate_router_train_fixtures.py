#!/usr/bin/env python3
"""Training parity fixture for an inference-free (Router) model: SpladeLoss parts, per-parameter
gradient norms and the weights after 3 AdamW steps with a separate learning rate for the
SparseStaticEmbedding weights (sentence-transformers' `learning_rate_mapping`), computed by
sentence-transformers 6.x / PyTorch on fixtures/encoder/models/router-learned (static query route,
BERT fill-mask + SpladePooling document route). Columns take routes as a `router_mapping`
{anchor: query, positive: document, negative: document} makes the data collator do:
`model.preprocess(texts, task=...)`. crates/train/tests/router.rs compares against
fixtures/train/router_learned.json.

Run from the repo root:
  HF_HUB_OFFLINE=1 /path/to/venv/bin/python scripts/parity/generate_router_train_fixtures.py
"""
from __future__ import annotations

import json
import re
from pathlib import Path

import torch
from sentence_transformers import SparseEncoder
from sentence_transformers.sparse_encoder.losses import SparseMultipleNegativesRankingLoss, SpladeLoss

REPO = Path(__file__).resolve().parents[2]
MODEL = REPO / "fixtures/encoder/models/router-learned"
OUT = REPO / "fixtures/train"

BATCH = [
    ("How can I learn to code fast?", "What is the fastest way to learn programming?", "How do I learn to cook fast?"),
    ("Why is the sky blue?", "What makes the sky look blue?", "Why is the ocean salty?"),
    ("What are the best books on machine learning?", "Which machine learning books should I read?",
     "What are the best books on world history?"),
    ("How do I lose weight without exercise?", "Can you lose weight without working out?", "How do I gain muscle fast?"),
]
COLUMNS = ["anchor", "positive", "negative"]
ROUTER_MAPPING = {"anchor": "query", "positive": "document", "negative": "document"}
CONFIG = {"lambda_query": 0.5, "lambda_document": 0.3}
ADAMW = {"lr": 1e-2, "betas": [0.9, 0.999], "eps": 1e-8, "weight_decay": 0.01, "steps": 3}
# sentence-transformers' parameter name of the static weights is model.0.sub_modules.query.0.weight
# (its docs' r"SparseStaticEmbedding\.*" matches no parameter name in 6.2 and is refused there).
LEARNING_RATE_MAPPING = {r"sub_modules\.query\.0\.weight": 0.1}


def our_name(name: str) -> str:
    # "0.sub_modules.document.0.model.bert.x" -> "bert.x"; the static weight -> its module folder.
    if name == "0.sub_modules.query.0.weight":
        return "query_0_SparseStaticEmbedding.weight"
    return name.split(".model.", 1)[1]


def main() -> None:
    torch.manual_seed(0)
    model = SparseEncoder(str(MODEL), device="cpu")
    model.train()
    for module in model.modules():
        if isinstance(module, torch.nn.Dropout):
            module.p = 0.0
    loss_fn = SpladeLoss(model, SparseMultipleNegativesRankingLoss(model),
                         document_regularizer_weight=CONFIG["lambda_document"],
                         query_regularizer_weight=CONFIG["lambda_query"])
    columns = [list(c) for c in zip(*BATCH)]
    features = [model.preprocess(col, task=ROUTER_MAPPING[name]) for name, col in zip(COLUMNS, columns)]
    labels = torch.zeros(len(BATCH))

    def forward():
        # Fresh dicts: the modules write their outputs into the features (and
        # SparseStaticEmbedding multiplies by a "sentence_embedding" already there).
        parts = loss_fn([dict(f) for f in features], labels)
        return sum(parts.values()), parts

    params = [(our_name(n), n, p) for n, p in model.named_parameters()]
    total, parts = forward()
    total.backward()
    grad_norms = {n: float(p.grad.double().norm()) for n, _, p in params if p.grad is not None}
    static = dict((n, p) for n, _, p in params)["query_0_SparseStaticEmbedding.weight"]
    touched = sorted(int(i) for i in torch.nonzero(static.grad).flatten())
    result = {
        "config": CONFIG,
        "columns": COLUMNS,
        "router_mapping": ROUTER_MAPPING,
        "texts": columns,
        "loss": {"total": float(total), **{k: float(v) for k, v in parts.items()}},
        "grad_norms": grad_norms,
        "static_grad": {str(i): float(static.grad[i]) for i in touched},
    }
    # The optimiser groups as the trainer's learning_rate_mapping makes them (weight decay on
    # every parameter here, as the other training fixtures).
    mapped = [p for n, st, p in params if any(re.search(pat, "model." + st) for pat in LEARNING_RATE_MAPPING)]
    rest = [p for _, _, p in params if all(p is not q for q in mapped)]
    opt = torch.optim.AdamW([{"params": rest}, {"params": mapped, "lr": next(iter(LEARNING_RATE_MAPPING.values()))}],
                            lr=ADAMW["lr"], betas=tuple(ADAMW["betas"]), eps=ADAMW["eps"],
                            weight_decay=ADAMW["weight_decay"])
    losses = []
    for _ in range(ADAMW["steps"]):
        opt.zero_grad()
        total, _ = forward()
        losses.append(float(total))
        total.backward()
        opt.step()
    weights = {
        n: {"sum": float(p.detach().double().sum()), "head": [float(x) for x in p.detach().flatten()[:16]]}
        for n, _, p in params
    }
    weights["query_0_SparseStaticEmbedding.weight"]["at"] = {str(i): float(static.detach()[i]) for i in touched}
    result["adamw"] = {**ADAMW, "learning_rate_mapping": LEARNING_RATE_MAPPING, "losses": losses, "weights": weights}
    result["versions"] = {"sentence_transformers": __import__("sentence_transformers").__version__,
                          "torch": torch.__version__}
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / "router_learned.json").write_text(json.dumps(result, indent=1, sort_keys=True) + "\n")
    print(result["loss"], losses)


if __name__ == "__main__":
    main()
