#!/usr/bin/env python3
"""Seconds per SpladeLoss training step: sentence-transformers vs splade-rs on the same batches.

Both take the first STEPS x BATCH rows of a triplet JSONL file in file order (batch 12 by
default), run SpladeLoss(SparseMultipleNegativesRankingLoss, λq 5e-5, λd 3e-5) forward,
backward and an AdamW step (lr 2e-5), 2 threads each, and report the mean time per step after
one untimed warm-up step. Both engines train with the model's dropout.

  HF_HUB_OFFLINE=1 /path/to/venv/bin/python scripts/bench/train_step_time.py --train TRIPLETS.jsonl \
      --model ~/.cache/splade-rs/models/splade-tiny [--steps 10] [--batch 12] [--rounds 3]
Build `target/release/splade` first. Triplets: `splade data triplets --pairs ../shared/data/quora-pairs/train/pairs.tsv --out T.jsonl`.
"""
import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def peak_rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return 0.0


def st_worker(model_dir: str, rows: list, batch: int, steps: int) -> dict:
    import torch
    torch.set_num_threads(2)
    from sentence_transformers import SparseEncoder
    from sentence_transformers.sparse_encoder.losses import SparseMultipleNegativesRankingLoss, SpladeLoss

    model = SparseEncoder(model_dir, device="cpu")
    model.train()
    loss_fn = SpladeLoss(model, SparseMultipleNegativesRankingLoss(model), document_regularizer_weight=3e-5,
                         query_regularizer_weight=5e-5)
    opt = torch.optim.AdamW(model.parameters(), lr=2e-5, weight_decay=0.0)
    times = []
    for s in range(steps + 1):
        chunk = rows[s * batch:(s + 1) * batch]
        t0 = time.perf_counter()
        features = [model.tokenize([r[c] for r in chunk]) for c in range(len(chunk[0]))]
        parts = loss_fn(features, None)
        total = sum(parts.values())
        opt.zero_grad()
        total.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        if s > 0:
            times.append(time.perf_counter() - t0)
    return {"seconds_per_step": sum(times) / len(times), "peak_rss_mb": peak_rss_mb()}


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--train", required=True)
    ap.add_argument("--model", default=str(Path.home() / ".cache/splade-rs/models/splade-tiny"))
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--batch", type=int, default=12)
    ap.add_argument("--splade", default=str(REPO / "target/release/splade"))
    ap.add_argument("--rounds", type=int, default=1,
                    help="alternate the two engines this many times and report the median ratio")
    ap.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()
    lines = Path(args.train).read_text().splitlines()[: (args.steps + 1) * args.batch]
    objs = [json.loads(l) for l in lines]
    cols = ["anchor", "positive"] + sorted(k for k in objs[0] if k.startswith("negative"))
    rows = [[o[c] for c in cols] for o in objs]
    if args.worker:
        print(json.dumps(st_worker(args.model, rows, args.batch, args.steps)))
        return 0
    env = dict(os.environ, OMP_NUM_THREADS="2", RAYON_NUM_THREADS="2", TOKENIZERS_PARALLELISM="false")
    print("| model | batch | round | ST s/step | splade-rs s/step | ratio (rs/ST) | ST peak RSS | splade-rs peak RSS |")
    print("|---|---|---|---|---|---|---|---|")
    ratios = []
    for round_ in range(1, args.rounds + 1):
        st = run_st(args, env)
        rs_step, rs_rss = run_rs(args, lines, env)
        ratios.append(rs_step / st["seconds_per_step"])
        print(f"| {Path(args.model).name} | {args.batch} x {len(cols)} texts | {round_} | {st['seconds_per_step']:.3f} | "
              f"{rs_step:.3f} | {ratios[-1]:.2f} | {st['peak_rss_mb']:.0f} MB | {rs_rss:.0f} MB |", flush=True)
    if args.rounds > 1:
        print(f"median ratio over {args.rounds} rounds: {statistics.median(ratios):.2f}")
    return 0


def run_st(args, env) -> dict:
    """sentence-transformers in a fresh process (its own peak RSS)."""
    out = subprocess.run([sys.executable, __file__, "--worker", "--train", args.train, "--model", args.model,
                          "--steps", str(args.steps), "--batch", str(args.batch)], env=env, check=True,
                         capture_output=True, text=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def run_rs(args, lines, env) -> tuple:
    """splade-rs' `splade train` on the same rows; mean seconds per step after the first, peak RSS."""
    with tempfile.TemporaryDirectory() as tmp:
        subset = Path(tmp) / "rows.jsonl"
        subset.write_text("\n".join(lines) + "\n")
        out = subprocess.run(["/usr/bin/time", "-v", args.splade, "--threads", "2", "train", "--model", args.model,
                              "--train", str(subset), "--output", str(Path(tmp) / "run"), "--sampler", "sequential",
                              "--batch-size", str(args.batch), "--max-steps", str(args.steps + 1), "--logging-steps", "1",
                              "--lr", "2e-5"], env=env, check=True, capture_output=True, text=True)
        log = [json.loads(l) for l in (Path(tmp) / "run" / "training_log.jsonl").read_text().splitlines()]
        rss = re.search(r"Maximum resident set size \(kbytes\): (\d+)", out.stderr)
    rs_step = sum(e["seconds_per_step"] for e in log[1:]) / len(log[1:])
    return rs_step, (int(rss.group(1)) / 1024 if rss else float("nan"))


if __name__ == "__main__":
    sys.exit(main())
