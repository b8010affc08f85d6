#!/usr/bin/env python3
"""The side-by-side training run of TRAINING.md: sentence-transformers' half, and the batch order.

Both engines must see the identical batches. `order` draws sentence-transformers' own
NO_DUPLICATES batch order (NoDuplicatesBatchSampler, seed 42, batch 12, full batches only) over a
triplet JSONL file and writes the rows in that order; both trainers then read that file in file
order (`splade train --sampler sequential`, and `train-st` below, which replaces the trainer's
batch sampler with a sequential one). Everything else is the seed card's recipe: SpladeLoss(
SparseMultipleNegativesRankingLoss, λ_query 5e-5, λ_document 3e-5, quadratic warm-up over the
first third), AdamW lr 2e-5 with linear decay, no warm-up, weight decay 0, clipping at 1.0.

  PY=/path/to/venv/bin/python   # sentence-transformers 6.x, torch, datasets
  HF_HUB_OFFLINE=1 $PY scripts/train/side_by_side.py order --train quora_triplets.jsonl \
      --steps 2000 --out ordered.jsonl
  HF_HUB_OFFLINE=1 $PY scripts/train/side_by_side.py train-st --train ordered.jsonl \
      --model ~/.cache/splade-rs/models/splade-tiny --steps 2000 --out runs/st
  target/release/splade train --model splade-tiny --train ordered.jsonl --sampler sequential \
      --max-steps 2000 --output runs/rs

  $PY scripts/train/side_by_side.py evaluate --models base=DIR,rs=runs/rs/final,st=runs/st/final \
      --out runs/metrics.json [--st-evaluators]

`evaluate` scores every model with the same evaluators (`splade eval`, whose numbers equal
sentence-transformers' evaluators: EVALUATION.md) on the Quora test pairs (binary
classification), SciFact test and the MS MARCO DL19 passage set (IR), and prints the table of
TRAINING.md. `--st-evaluators` also runs sentence-transformers' own evaluators on each model.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


def read_rows(path: Path) -> list[dict]:
    rows = []
    with open(path, encoding="utf-8") as f:
        for line in f:
            if line.strip():
                o = json.loads(line)
                negs = sorted(k for k in o if k.startswith("negative"))
                rows.append({"anchor": o["anchor"], "positive": o["positive"], **{k: o[k] for k in negs}})
    return rows


def order(args: argparse.Namespace) -> int:
    from datasets import Dataset
    from sentence_transformers.base.sampler import NoDuplicatesBatchSampler

    rows = read_rows(args.train)
    dataset = Dataset.from_list(rows)
    sampler = NoDuplicatesBatchSampler(dataset, batch_size=args.batch, drop_last=True, seed=args.seed)
    sampler.set_epoch(0)
    out_rows = []
    for batch in sampler:
        out_rows.extend(rows[i] for i in batch)
        if args.steps and len(out_rows) >= args.steps * args.batch:
            break
    tmp = args.out.with_suffix(".tmp")
    with open(tmp, "w", encoding="utf-8") as f:
        for r in out_rows:
            f.write(json.dumps(r, ensure_ascii=False) + "\n")
    tmp.replace(args.out)
    print(f"{len(out_rows)} rows ({len(out_rows) // args.batch} batches of {args.batch}) -> {args.out}")
    return 0


def train_st(args: argparse.Namespace) -> int:
    import torch
    from datasets import Dataset
    from sentence_transformers import SparseEncoder
    from sentence_transformers.base.sampler import DefaultBatchSampler
    from sentence_transformers.sparse_encoder import SparseEncoderTrainer, SparseEncoderTrainingArguments
    from sentence_transformers.sparse_encoder.losses import SparseMultipleNegativesRankingLoss, SpladeLoss
    from torch.utils.data import SequentialSampler
    from transformers import TrainerCallback

    torch.set_num_threads(args.threads)
    rows = read_rows(args.train)
    dataset = Dataset.from_list(rows)
    model = SparseEncoder(str(args.model), device="cpu")
    loss = SpladeLoss(model, SparseMultipleNegativesRankingLoss(model), query_regularizer_weight=5e-5,
                      document_regularizer_weight=3e-5)

    def sequential(dataset, batch_size, drop_last, valid_label_columns=None, generator=None, seed=0):
        return DefaultBatchSampler(SequentialSampler(dataset), batch_size=batch_size, drop_last=drop_last,
                                   valid_label_columns=valid_label_columns, generator=generator, seed=seed)

    log_path = args.out / "training_log.jsonl"
    args.out.mkdir(parents=True, exist_ok=True)
    log_file = open(log_path, "w", encoding="utf-8")

    class Log(TrainerCallback):
        def __init__(self):
            self.t0 = time.perf_counter()

        def on_log(self, _args, state, _control, logs=None, **_):
            if logs:
                entry = {"step": state.global_step, "elapsed_s": round(time.perf_counter() - self.t0, 2), **logs}
                log_file.write(json.dumps(entry) + "\n")
                log_file.flush()

    training_args = SparseEncoderTrainingArguments(
        output_dir=str(args.out / "trainer"),
        max_steps=args.steps,
        per_device_train_batch_size=args.batch,
        learning_rate=2e-5,
        warmup_ratio=0.0,
        weight_decay=0.0,
        max_grad_norm=1.0,
        lr_scheduler_type="linear",
        seed=args.seed,
        logging_steps=args.logging_steps,
        save_strategy="no",
        eval_strategy="no",
        report_to="none",
        use_cpu=True,
        batch_sampler=sequential,
        dataloader_drop_last=True,
    )
    trainer = SparseEncoderTrainer(model=model, args=training_args, train_dataset=dataset, loss=loss,
                                   callbacks=[Log()])
    t0 = time.perf_counter()
    trainer.train()
    seconds = time.perf_counter() - t0
    model.save(str(args.out / "final"))
    summary = {"steps": args.steps, "seconds": round(seconds, 1), "seconds_per_step": round(seconds / args.steps, 4),
               "torch_threads": args.threads}
    (args.out / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    print(json.dumps(summary))
    return 0


BINARY_KEYS = ["dot_ap", "dot_accuracy", "max_ap"]
IR_KEYS = ["dot_ndcg@10", "dot_mrr@10", "dot_map@100", "dot_recall@10"]


def evaluate(args: argparse.Namespace) -> int:
    import subprocess
    import tempfile

    data = args.data_dir
    tasks = [
        ("quora-test", ["binary", "--pairs", str(data / "quora-pairs/test/pairs.tsv")], BINARY_KEYS),
        *[(name, ["ir", "--corpus", str(data / name / "corpus.jsonl"), "--queries", str(data / name / "queries.jsonl"),
                  "--qrels", str(data / name / "qrels/test.tsv")], IR_KEYS)
          for name in ("scifact", "mini-msmarco-dl19")],
    ]
    results = json.loads(args.out.read_text()) if args.out.exists() else {}
    for spec in args.models.split(","):
        label, model = spec.split("=", 1)
        for task, cmd, _ in tasks:
            key = f"{label}/{task}"
            if key in results:
                continue
            with tempfile.TemporaryDirectory() as tmp:
                out = Path(tmp) / "m.json"
                t0 = time.perf_counter()
                subprocess.run([str(args.splade), "--threads", str(args.threads), "eval", cmd[0], "--model", model,
                                *cmd[1:], "--output", str(out)], check=True, stdout=subprocess.DEVNULL)
                metrics = json.loads(out.read_text())
            entry = {"splade-rs": metrics, "seconds": round(time.perf_counter() - t0, 1)}
            if args.st_evaluators:
                entry["st"] = st_evaluate(model, cmd)
            results[key] = entry
            args.out.write_text(json.dumps(results, indent=1) + "\n")
            print(f"{key}: {entry['seconds']} s", file=sys.stderr)
    labels = [spec.split("=", 1)[0] for spec in args.models.split(",")]
    print("| dataset | metric | " + " | ".join(labels) + " |")
    print("|:--|:--|" + "--:|" * len(labels))
    for task, _, keys in tasks:
        for i, k in enumerate(keys):
            cells = [f"{results[f'{l}/{task}']['splade-rs'][k]:.4f}" for l in labels]
            print(f"| {task if i == 0 else ''} | {k} | " + " | ".join(cells) + " |")
    return 0


def st_evaluate(model: str, cmd: list[str]) -> dict:
    from sentence_transformers import SparseEncoder
    from sentence_transformers.sparse_encoder.evaluation import (
        SparseBinaryClassificationEvaluator,
        SparseInformationRetrievalEvaluator,
    )

    encoder = SparseEncoder(model, device="cpu")
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "eval"))
    from compare_evaluators import beir, pairs  # the same data preparation as EVALUATION.md

    if cmd[0] == "binary":
        s1, s2, labels = pairs(Path(cmd[2]))
        ev = SparseBinaryClassificationEvaluator(s1, s2, labels, write_csv=False,
                                                 similarity_fn_names=["cosine", "dot", "euclidean", "manhattan"])
    else:
        corpus, queries, relevant = beir(Path(cmd[2]).parent)
        ev = SparseInformationRetrievalEvaluator(queries, corpus, relevant, write_csv=False)
    return {k: float(v) for k, v in ev(encoder).items()}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    o = sub.add_parser("order", help="write the triplets in sentence-transformers' NO_DUPLICATES batch order")
    o.add_argument("--train", type=Path, required=True)
    o.add_argument("--out", type=Path, required=True)
    o.add_argument("--steps", type=int, default=0, help="keep only this many batches (0: all full batches)")
    o.add_argument("--batch", type=int, default=12)
    o.add_argument("--seed", type=int, default=42)
    t = sub.add_parser("train-st", help="train with sentence-transformers on the ordered rows, in file order")
    t.add_argument("--train", type=Path, required=True)
    t.add_argument("--model", type=Path, required=True)
    t.add_argument("--out", type=Path, required=True)
    t.add_argument("--steps", type=int, default=2000)
    t.add_argument("--batch", type=int, default=12)
    t.add_argument("--seed", type=int, default=42)
    t.add_argument("--threads", type=int, default=2)
    t.add_argument("--logging-steps", type=int, default=50)
    e = sub.add_parser("evaluate", help="score models with the same evaluators, before/after table")
    e.add_argument("--models", required=True, help="label=DIR,label=DIR,...")
    e.add_argument("--out", type=Path, required=True, help="JSON of all metrics (resumed if present)")
    e.add_argument("--data-dir", type=Path, default=Path(__file__).resolve().parents[3] / "shared" / "data")
    e.add_argument("--splade", type=Path, default=Path(__file__).resolve().parents[2] / "target/release/splade")
    e.add_argument("--threads", type=int, default=2)
    e.add_argument("--st-evaluators", action="store_true")
    args = ap.parse_args()
    return {"order": order, "train-st": train_st, "evaluate": evaluate}[args.cmd](args)


if __name__ == "__main__":
    sys.exit(main())
