#!/usr/bin/env python3
"""Training parity fixtures for CSR models: sentence-transformers 6.2's `CSRLoss` (reconstruction
terms of `CSRReconstructionLoss` + `SparseMultipleNegativesRankingLoss`) on copies of
fixtures/encoder/models/csr-bert with the SparseAutoEncoder's `dead_threshold` lowered to 2 (so the
auxiliary loss over dead latents is exercised within the first step), for each CASE (config edits of
the copy): loss parts and per-parameter gradient norms of one step, then the losses of three AdamW
steps, the weights after them and the dead-latent statistics (`stats_last_nonzero`).
crates/train/tests/csr.rs applies the same edits and compares against fixtures/train/csr/<case>.json.

Run from the repo root (deterministic: no dropout, no randomness):
  HF_HUB_OFFLINE=1 /work/venv-ref/bin/python scripts/parity/generate_csr_train_fixtures.py
"""
from __future__ import annotations

import json
import shutil
import tempfile
from pathlib import Path

import torch
from sentence_transformers import SparseEncoder
from sentence_transformers.sparse_encoder.losses import CSRLoss

REPO = Path(__file__).resolve().parents[2]
MODEL = REPO / "fixtures/encoder/models/csr-bert"
OUT = REPO / "fixtures/train/csr"

BATCH = [
    ("How can I learn to code fast?", "What is the fastest way to learn programming?", "How do I learn to cook fast?"),
    ("Why is the sky blue?", "What makes the sky look blue?", "Why is the ocean salty?"),
    ("What are the best books on machine learning?", "Which machine learning books should I read?",
     "What are the best books on world history?"),
    ("How do I lose weight without exercise?", "Can you lose weight without working out?", "How do I gain muscle fast?"),
    ("Where is the Eiffel tower?", "In which city is the Eiffel tower?", "Where is the Colosseum?"),
]
COLUMNS = ["anchor", "positive", "negative"]
ADAMW = {"lr": 1e-2, "betas": [0.9, 0.999], "eps": 1e-8, "weight_decay": 0.01, "steps": 3}
CASES = {
    "mean": {"edits": {"2_SparseAutoEncoder/config.json": {"dead_threshold": 2}}, "beta": 0.5, "gamma": 0.7},
    "normalize_cls": {"edits": {"2_SparseAutoEncoder/config.json": {"dead_threshold": 2, "normalize": True},
                                "1_Pooling/config.json": {"pooling_mode": "cls"}},
                      "beta": 0.1, "gamma": 1.0},
}


def our_name(name: str) -> str:
    # "0.model.embeddings.x" -> "embeddings.x"; "2.pre_bias" -> "2_SparseAutoEncoder.pre_bias".
    if name.startswith("0.model."):
        return name[len("0.model."):]
    if name.startswith("2."):
        return "2_SparseAutoEncoder." + name[2:]
    raise ValueError(name)


def run_case(name: str, case: dict) -> dict:
    with tempfile.TemporaryDirectory(prefix="splade-rs-csr-train-") as tmp:
        folder = Path(tmp) / "csr-bert"
        shutil.copytree(MODEL, folder)
        for file, edits in case["edits"].items():
            path = folder / file
            config = json.loads(path.read_text())
            config.update(edits)
            path.write_text(json.dumps(config, indent=2) + "\n")
        torch.manual_seed(0)
        model = SparseEncoder(str(folder), device="cpu")
    model.train()
    for module in model.modules():
        if isinstance(module, torch.nn.Dropout):
            module.p = 0.0
    loss_fn = CSRLoss(model, beta=case["beta"], gamma=case["gamma"])
    columns = [list(c) for c in zip(*BATCH)]
    features = [model.preprocess(col) for col in columns]
    labels = torch.zeros(len(BATCH))
    sae = model[2]
    initial_stats = sae.stats_last_nonzero.clone()

    def forward():
        parts = loss_fn([dict(f) for f in features], labels)
        return sum(parts.values()), parts

    params = [(our_name(n), p) for n, p in model.named_parameters()]
    total, parts = forward()
    total.backward()
    grad_norms = {n: float(p.grad.double().norm()) for n, p in params if p.grad is not None}
    stats_after_one = sae.stats_last_nonzero.tolist()
    result = {
        "case": name,
        "edits": case["edits"],
        "beta": case["beta"],
        "gamma": case["gamma"],
        "columns": COLUMNS,
        "texts": columns,
        "loss": {"total": float(total), **{k: float(v) for k, v in parts.items()}},
        "grad_norms": grad_norms,
        "stats_after_one_step": stats_after_one,
        "dead_after_one_step": int((sae.stats_last_nonzero > sae.dead_threshold).sum()),
    }
    # Three AdamW steps from the initial weights and statistics.
    model.zero_grad()
    with torch.no_grad():
        sae.stats_last_nonzero.copy_(initial_stats)
    # Re-load the weights (the step above did not change them: no optimiser step was taken).
    opt = torch.optim.AdamW([p for _, p in params], lr=ADAMW["lr"], betas=tuple(ADAMW["betas"]), eps=ADAMW["eps"],
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
        for n, p in params
    }
    result["adamw"] = {**ADAMW, "losses": losses, "weights": weights,
                       "stats": sae.stats_last_nonzero.tolist()}
    # The trained model's vectors (inference mode), for the saved folder's round trip.
    model.eval()
    texts = [t for row in BATCH for t in row]
    emb = model.encode(texts, convert_to_tensor=True, convert_to_sparse_tensor=False)
    result["trained_vectors"] = [
        {"indices": torch.nonzero(r).flatten().tolist(), "values": [float(v) for v in r[r != 0].tolist()]}
        for r in emb
    ]
    result["versions"] = {"sentence_transformers": __import__("sentence_transformers").__version__,
                          "torch": torch.__version__}
    print(name, result["loss"], losses, "dead after one step:", result["dead_after_one_step"])
    return result


def main() -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    for name, case in CASES.items():
        result = run_case(name, case)
        (OUT / f"{name}.json").write_text(json.dumps(result, indent=1, sort_keys=True) + "\n")


if __name__ == "__main__":
    main()
