#!/usr/bin/env python3
"""Encoder throughput and peak memory: sentence-transformers vs splade-rs, same texts, same machine.

Each measurement runs in its own process (2 threads each, batch 32): load the model, encode one
batch untimed (warm-up), then time encoding every text; peak RSS is the process's VmHWM.

Models:
  splade-tiny          the default model (~/.cache/splade-rs/models/splade-tiny; `splade info` fetches it)
  distilbert-base-rnd  a random DistilBertForMaskedLM of distilbert-base size (6 layers, 768 hidden,
                       12 heads, 30522 vocab), SparseEncoder layout, max_seq_length 256, generated once
                       (seeded) into ~/.cache/splade-rs/bench/; its MLM bias is shifted to N(-4, 1) so
                       vectors have a realistic few hundred active dimensions.
  roberta-base-rnd     a random RobertaForMaskedLM of roberta-base size (12 layers, 768 hidden, 50265
                       vocab, 514 positions), max_seq_length 256
  modernbert-base-rnd  a random ModernBertForMaskedLM of ModernBERT-base size (22 layers, 768 hidden,
                       1152 GeGLU, local window 128 with a global layer every 3, 50368 vocab),
                       max_seq_length 256
                       Both: a byte-level BPE tokenizer trained (seeded data, ~50k tokens) on the SciFact
                       corpus and Quora questions, MLM bias N(-4, 1), generated once into
                       ~/.cache/splade-rs/bench/ (never committed).
Text sets (from ../shared/data):
  questions  Quora test questions (~15 tokens)
  passages   SciFact passages of 150-256 splade-tiny tokens

Run from the repo root, after `cargo build --release`:
  HF_HUB_OFFLINE=1 /path/to/venv/bin/python scripts/bench/compare_encoders.py [--quick]
      [--models splade-tiny,distilbert-base-rnd,roberta-base-rnd,modernbert-base-rnd]
The venv needs sentence-transformers==6.2.0 and torch (see scripts/parity/generate_encoder_fixtures.py).
"""
from __future__ import annotations

import argparse
import csv
import json
import os
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
CACHE = Path(os.environ.get("SPLADE_RS_CACHE", Path.home() / ".cache" / "splade-rs"))
BENCH = CACHE / "bench"
THREADS = 2
BATCH = 32


def peak_rss() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    return 0


def st_worker(model_dir: str, texts_file: str, batch_size: int) -> None:
    """Runs inside a fresh process: measure sentence-transformers."""
    import torch

    torch.set_num_threads(THREADS)
    from sentence_transformers import SparseEncoder

    texts = Path(texts_file).read_text(encoding="utf-8").split("\n")[:-1]
    t0 = time.perf_counter()
    model = SparseEncoder(model_dir, device="cpu")
    load = time.perf_counter() - t0
    model.encode(texts[:batch_size], batch_size=batch_size)
    t0 = time.perf_counter()
    emb = model.encode(texts, batch_size=batch_size)
    secs = time.perf_counter() - t0
    stats = model.sparsity(emb)
    print(json.dumps({
        "engine": "sentence-transformers", "texts": len(texts), "seconds": secs,
        "texts_per_s": len(texts) / secs, "load_seconds": load, "peak_rss_bytes": peak_rss(),
        "active_dims": float(stats["active_dims"]),
    }))


def quora_questions(n: int) -> list[str]:
    path = REPO / "../shared/data/quora-pairs/test/pairs.tsv"
    seen, out = set(), []
    with open(path, encoding="utf-8", newline="") as f:
        for row in csv.DictReader(f, delimiter="\t", quoting=csv.QUOTE_NONE):
            for t in (row["sentence1"], row["sentence2"]):
                t = t.replace("\n", " ").strip()
                if t and t not in seen:
                    seen.add(t)
                    out.append(t)
                if len(out) >= n:
                    return out
    return out


def scifact_passages(n: int, tokenizer_json: Path) -> list[str]:
    from tokenizers import Tokenizer

    tok = Tokenizer.from_file(str(tokenizer_json))
    tok.no_truncation()
    tok.no_padding()
    out = []
    with open(REPO / "../shared/data/scifact/corpus.jsonl", encoding="utf-8") as f:
        for line in f:
            d = json.loads(line)
            text = (d["title"] + " " + d["text"]).replace("\n", " ").strip()
            if 150 <= len(tok.encode(text).ids) <= 256:
                out.append(text)
            if len(out) >= n:
                break
    return out


def make_random_distilbert(target: Path) -> None:
    if (target / "modules.json").is_file():
        return
    import torch
    from sentence_transformers import SparseEncoder
    from sentence_transformers.sparse_encoder.models import MLMTransformer, SpladePooling
    from transformers import DistilBertConfig, DistilBertForMaskedLM

    torch.manual_seed(0)
    hf_dir = BENCH / "distilbert-base-rnd-hf"
    model = DistilBertForMaskedLM(DistilBertConfig())
    with torch.no_grad():
        g = torch.Generator().manual_seed(1)
        model.vocab_projector.bias.copy_(torch.randn(model.config.vocab_size, generator=g) - 4.0)
    model.save_pretrained(hf_dir)
    tiny = CACHE / "models" / "splade-tiny"
    for name in ("tokenizer.json", "tokenizer_config.json"):
        (hf_dir / name).write_bytes((tiny / name).read_bytes())
    mlm = MLMTransformer(str(hf_dir), max_seq_length=256)
    enc = SparseEncoder(modules=[mlm, SpladePooling("max", "relu")], device="cpu")
    enc.save(str(target))


def train_bpe(kind: str):
    """A byte-level BPE tokenizer of ~50k tokens trained on SciFact + Quora (RoBERTa or ModernBERT
    special tokens and post-processor)."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers

    corpus = quora_questions(20000)
    with open(REPO / "../shared/data/scifact/corpus.jsonl", encoding="utf-8") as f:
        for line in f:
            d = json.loads(line)
            corpus.append(d["title"] + " " + d["text"])
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    specials = ["<s>", "<pad>", "</s>", "<unk>"] if kind == "roberta" else []
    tok.train_from_iterator(corpus, trainers.BpeTrainer(
        vocab_size=50000, special_tokens=specials, show_progress=False,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet()))
    if kind == "roberta":
        tok.add_special_tokens(["<mask>"])
        tok.post_processor = processors.RobertaProcessing(("</s>", 2), ("<s>", 0))
        names = dict(bos_token="<s>", eos_token="</s>", unk_token="<unk>", sep_token="</s>", cls_token="<s>",
                     pad_token="<pad>", mask_token="<mask>")
    else:
        tok.add_special_tokens(["[UNK]", "[CLS]", "[SEP]", "[PAD]", "[MASK]"])
        cls, sep = tok.token_to_id("[CLS]"), tok.token_to_id("[SEP]")
        tok.post_processor = processors.TemplateProcessing(
            single="[CLS] $A [SEP]", special_tokens=[("[CLS]", cls), ("[SEP]", sep)])
        names = dict(unk_token="[UNK]", cls_token="[CLS]", sep_token="[SEP]", pad_token="[PAD]", mask_token="[MASK]")
    return tok, names


def make_random_backbone(kind: str, target: Path) -> None:
    """roberta-base-rnd / modernbert-base-rnd (see the module doc)."""
    if (target / "modules.json").is_file():
        return
    import tempfile

    import torch
    from sentence_transformers import SparseEncoder
    from sentence_transformers.sparse_encoder.modules import SpladePooling, Transformer
    from transformers import (ModernBertConfig, ModernBertForMaskedLM, PreTrainedTokenizerFast, RobertaConfig,
                              RobertaForMaskedLM)

    torch.manual_seed(0)
    tok, names = train_bpe(kind)
    if kind == "roberta":
        model = RobertaForMaskedLM(RobertaConfig(vocab_size=50265, max_position_embeddings=514, type_vocab_size=1,
                                                 pad_token_id=1, bos_token_id=0, eos_token_id=2))
        bias = model.lm_head.bias
    else:
        model = ModernBertForMaskedLM(ModernBertConfig(
            vocab_size=50368, pad_token_id=tok.token_to_id("[PAD]"), cls_token_id=tok.token_to_id("[CLS]"),
            sep_token_id=tok.token_to_id("[SEP]"), bos_token_id=tok.token_to_id("[CLS]"),
            eos_token_id=tok.token_to_id("[SEP]")))
        bias = model.decoder.bias
    with torch.no_grad():
        g = torch.Generator().manual_seed(1)
        bias.copy_(torch.randn(bias.shape[0], generator=g) - 4.0)
        if kind == "roberta":
            model.lm_head.decoder.bias.copy_(bias)
    with tempfile.TemporaryDirectory() as tmp:
        model.save_pretrained(tmp)
        PreTrainedTokenizerFast(tokenizer_object=tok, model_max_length=256,
                                model_input_names=["input_ids", "attention_mask"], **names).save_pretrained(tmp)
        transformer = Transformer(tmp, transformer_task="fill-mask", max_seq_length=256)
        pooling = SpladePooling("max", "relu", embedding_dimension=model.config.vocab_size)
        SparseEncoder(modules=[transformer, pooling], device="cpu").save(str(target), create_model_card=False)


def run(cmd: list[str], env: dict) -> dict:
    out = subprocess.run(cmd, env=env, check=True, capture_output=True, text=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true", help="fewer texts (a smoke run)")
    ap.add_argument("--splade", default=str(REPO / "target/release/splade"))
    ap.add_argument("--models", default="splade-tiny,distilbert-base-rnd",
                    help="comma-separated: splade-tiny, distilbert-base-rnd, roberta-base-rnd, modernbert-base-rnd")
    ap.add_argument("--worker", nargs=3, metavar=("MODEL", "TEXTS", "BATCH"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.worker:
        st_worker(args.worker[0], args.worker[1], int(args.worker[2]))
        return 0

    BENCH.mkdir(parents=True, exist_ok=True)
    env = dict(os.environ, OMP_NUM_THREADS=str(THREADS), MKL_NUM_THREADS=str(THREADS),
               RAYON_NUM_THREADS=str(THREADS), TOKENIZERS_PARALLELISM="false", HF_HUB_OFFLINE="1")
    subprocess.run([args.splade, "info"], env=env, check=True, capture_output=True)  # fetch splade-tiny
    tiny = CACHE / "models" / "splade-tiny"
    wanted = args.models.split(",")
    rnd = BENCH / "distilbert-base-rnd"
    if "distilbert-base-rnd" in wanted:
        make_random_distilbert(rnd)
    for kind in ("roberta", "modernbert"):
        if f"{kind}-base-rnd" in wanted:
            make_random_backbone(kind, BENCH / f"{kind}-base-rnd")

    scale = 0.1 if args.quick else 1.0
    plan = [
        ("splade-tiny", tiny, "questions", int(2000 * scale)),
        ("splade-tiny", tiny, "passages", int(300 * scale)),
        ("distilbert-base-rnd", rnd, "questions", int(500 * scale)),
        ("distilbert-base-rnd", rnd, "passages", int(100 * scale)),
        ("roberta-base-rnd", BENCH / "roberta-base-rnd", "questions", int(300 * scale)),
        ("roberta-base-rnd", BENCH / "roberta-base-rnd", "passages", int(60 * scale)),
        ("modernbert-base-rnd", BENCH / "modernbert-base-rnd", "questions", int(300 * scale)),
        ("modernbert-base-rnd", BENCH / "modernbert-base-rnd", "passages", int(60 * scale)),
    ]
    plan = [p for p in plan if p[0] in wanted]
    rows = []
    for model_name, model_dir, set_name, n in plan:
        texts = quora_questions(n) if set_name == "questions" else scifact_passages(n, tiny / "tokenizer.json")
        texts_file = BENCH / f"{set_name}-{n}.txt"
        texts_file.write_text("".join(t + "\n" for t in texts), encoding="utf-8")
        st = run([sys.executable, __file__, "--worker", str(model_dir), str(texts_file), str(BATCH)], env)
        rs = run([args.splade, "--threads", str(THREADS), "bench", "--model", str(model_dir),
                  "--input", str(texts_file), "--batch-size", str(BATCH)], env)
        row = {
            "model": model_name, "set": set_name, "texts": len(texts),
            "st_texts_per_s": st["texts_per_s"], "rs_texts_per_s": rs["texts_per_s"],
            "speedup": rs["texts_per_s"] / st["texts_per_s"],
            "st_peak_rss_mb": st["peak_rss_bytes"] / 2**20, "rs_peak_rss_mb": rs["peak_rss_bytes"] / 2**20,
            "rss_ratio": rs["peak_rss_bytes"] / st["peak_rss_bytes"],
            "st_active_dims": st["active_dims"], "rs_active_dims": rs["active_dims"],
        }
        rows.append(row)
        print(json.dumps(row), file=sys.stderr, flush=True)

    print("| model | texts | ST texts/s | splade-rs texts/s | speed-up | ST peak RSS | splade-rs peak RSS | RSS ratio | active dims (ST / rs) |")
    print("|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['model']} | {r['texts']} {r['set']} | {r['st_texts_per_s']:.1f} | {r['rs_texts_per_s']:.1f} | "
              f"{r['speedup']:.2f}x | {r['st_peak_rss_mb']:.0f} MB | {r['rs_peak_rss_mb']:.0f} MB | {r['rss_ratio']:.2f} | "
              f"{r['st_active_dims']:.1f} / {r['rs_active_dims']:.1f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
