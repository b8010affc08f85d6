#!/usr/bin/env python3
"""Generate parity fixtures for the RoBERTa, XLM-RoBERTa and ModernBERT backbones of splade-rs
from the Python reference (sentence-transformers 6.2.0 `SparseEncoder`, transformers 5.x).

What it writes (under fixtures/encoder/ of the repository):
  models/<name>/...          a tiny random SPLADE model per architecture, saved by
                             `SparseEncoder.save()` (Transformer fill-mask + SpladePooling), with
                             its own small tokenizer trained here (see MODELS)
  <name>/expected.json       token ids and reference vectors for a subset of texts.json

The tokenizers are trained with `tokenizers` on the texts of fixtures/encoder/texts.json (already
committed, short Quora questions and SciFact passages), so no other data is read or committed:
  roberta-bpe-v6             RobertaForMaskedLM, byte-level BPE + RobertaProcessing, tied decoder,
                             max length 64 (max_position_embeddings 66 = 64 + padding_idx + 1)
  xlm-roberta-unigram-v6     XLMRobertaForMaskedLM, SentencePiece-style Unigram (Metaspace),
                             untied decoder, max length 128
  modernbert-bpe-v6          ModernBertForMaskedLM, 3 layers (global, local, local), a local
                             window of 8 tokens (|i - j| <= 4), byte-level BPE with [CLS]/[SEP]
                             appended after the learned vocabulary, vocabulary padded to a
                             multiple of 64 (as ModernBERT pads 50280 to 50368), max length 320 (longer than the
                             256-query attention blocks of splade-rs)

Run from the repository root. Deterministic except the XLM-R Unigram tokenizer: `tokenizers`'
UnigramTrainer gives slightly different piece scores (and so piece order) from run to run; the
committed tokenizer.json and expected.json of each model come from one run together:
  /work/venv-ref/bin/python scripts/parity/generate_backbone_fixtures.py [--out fixtures/encoder]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")

import numpy as np  # noqa: E402
import torch  # noqa: E402
from shared_text import resolve  # fixtures refer to ../shared/data texts, never copy them

REPO_ROOT = Path(__file__).resolve().parents[2]

# Texts of texts.json the expectations cover: Quora questions, long SciFact passages (longer
# than every max length and the ModernBERT window) and the edge cases (empty, whitespace, a
# 3,000-character word, non-Latin scripts...).
QUORA = list(range(0, 24))
SCIFACT = list(range(130, 142))
EDGE = list(range(210, 233))

MODELS = [
    {"name": "roberta-bpe-v6", "arch": "roberta", "seed": 11, "vocab": 1000, "max_len": 64, "tied": True},
    {"name": "xlm-roberta-unigram-v6", "arch": "xlm-roberta", "seed": 12, "vocab": 1000, "max_len": 128,
     "tied": False},
    {"name": "modernbert-bpe-v6", "arch": "modernbert", "seed": 13, "vocab": 1000, "max_len": 320, "tied": True},
]


def f32(x) -> float:
    return float(str(np.float32(x)))


def write_json(path: Path, obj, compact: bool = True) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    if compact:
        text = json.dumps(obj, ensure_ascii=False, separators=(",", ":"), allow_nan=False)
    else:
        text = json.dumps(obj, ensure_ascii=False, indent=1, allow_nan=False)
    path.write_text(text + "\n", encoding="utf-8")


def sparse_rows(emb: torch.Tensor) -> list[dict]:
    dense = emb.to_dense() if emb.is_sparse else emb
    dense = dense.detach().cpu().float()
    assert torch.isfinite(dense).all() and (dense >= 0).all()
    rows = []
    for row in dense:
        idx = torch.nonzero(row > 0, as_tuple=False).flatten()
        rows.append({"indices": idx.tolist(), "values": [f32(v) for v in row[idx].numpy().tolist()]})
    return rows


# --------------------------------------------------------------------------------------------
# tokenizers
# --------------------------------------------------------------------------------------------


def train_tokenizer(arch: str, vocab: int, corpus: list[str]):
    from tokenizers import Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers, processors, trainers

    if arch == "roberta":
        specials = ["<s>", "<pad>", "</s>", "<unk>"]
        tok = Tokenizer(models.BPE())
        tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
        tok.decoder = decoders.ByteLevel()
        trainer = trainers.BpeTrainer(vocab_size=vocab - 1, special_tokens=specials, show_progress=False,
                                      initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
        tok.train_from_iterator(corpus, trainer)
        tok.add_special_tokens(["<mask>"])
        tok.post_processor = processors.RobertaProcessing(("</s>", 2), ("<s>", 0), trim_offsets=True,
                                                          add_prefix_space=False)
        names = dict(bos_token="<s>", eos_token="</s>", unk_token="<unk>", sep_token="</s>", cls_token="<s>",
                     pad_token="<pad>", mask_token="<mask>")
    elif arch == "xlm-roberta":
        specials = ["<s>", "<pad>", "</s>", "<unk>"]
        tok = Tokenizer(models.Unigram())
        tok.normalizer = normalizers.Sequence(
            [normalizers.Nmt(), normalizers.NFKC(), normalizers.Replace(Regex(" {2,}"), " ")])
        tok.pre_tokenizer = pre_tokenizers.Metaspace(replacement="\u2581", prepend_scheme="always")
        tok.decoder = decoders.Metaspace(replacement="\u2581", prepend_scheme="always")
        trainer = trainers.UnigramTrainer(vocab_size=vocab - 1, special_tokens=specials, unk_token="<unk>",
                                          show_progress=False)
        tok.train_from_iterator(corpus, trainer)
        tok.add_special_tokens(["<mask>"])
        tok.post_processor = processors.TemplateProcessing(
            single="<s> $A </s>", pair="<s> $A </s> </s> $B </s>",
            special_tokens=[("<s>", 0), ("</s>", 2)])
        names = dict(bos_token="<s>", eos_token="</s>", unk_token="<unk>", sep_token="</s>", cls_token="<s>",
                     pad_token="<pad>", mask_token="<mask>")
    else:  # modernbert: byte-level BPE, the special tokens after the learned vocabulary
        tok = Tokenizer(models.BPE())
        tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
        tok.decoder = decoders.ByteLevel()
        trainer = trainers.BpeTrainer(vocab_size=vocab - 5, show_progress=False,
                                      initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
        tok.train_from_iterator(corpus, trainer)
        tok.add_special_tokens(["[UNK]", "[CLS]", "[SEP]", "[PAD]", "[MASK]"])
        cls, sep = tok.token_to_id("[CLS]"), tok.token_to_id("[SEP]")
        tok.post_processor = processors.TemplateProcessing(
            single="[CLS] $A [SEP]", pair="[CLS] $A [SEP] $B [SEP]", special_tokens=[("[CLS]", cls), ("[SEP]", sep)])
        names = dict(unk_token="[UNK]", cls_token="[CLS]", sep_token="[SEP]", pad_token="[PAD]",
                     mask_token="[MASK]")
    return tok, names


# --------------------------------------------------------------------------------------------
# models
# --------------------------------------------------------------------------------------------


def build_model(spec: dict, tok):
    from transformers import (ModernBertConfig, ModernBertForMaskedLM, RobertaConfig, RobertaForMaskedLM,
                              XLMRobertaConfig, XLMRobertaForMaskedLM)

    torch.manual_seed(spec["seed"])
    n_tok = tok.get_vocab_size()
    if spec["arch"] in ("roberta", "xlm-roberta"):
        cls_config, cls_model = ((RobertaConfig, RobertaForMaskedLM) if spec["arch"] == "roberta"
                                 else (XLMRobertaConfig, XLMRobertaForMaskedLM))
        config = cls_config(
            vocab_size=n_tok, hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=48,
            max_position_embeddings=spec["max_len"] + 2, type_vocab_size=1, pad_token_id=1, bos_token_id=0,
            eos_token_id=2, initializer_range=0.2, tie_word_embeddings=spec["tied"],
            hidden_act="gelu_new" if spec["arch"] == "xlm-roberta" else "gelu",
        )
        model = cls_model(config)
    else:
        vocab = (n_tok + 63) // 64 * 64
        config = ModernBertConfig(
            vocab_size=vocab, hidden_size=32, intermediate_size=40, num_hidden_layers=3, num_attention_heads=2,
            max_position_embeddings=512, local_attention=8, global_attn_every_n_layers=3,
            global_rope_theta=160000.0, local_rope_theta=10000.0, initializer_range=0.2,
            pad_token_id=tok.token_to_id("[PAD]"), cls_token_id=tok.token_to_id("[CLS]"),
            sep_token_id=tok.token_to_id("[SEP]"), bos_token_id=tok.token_to_id("[CLS]"),
            eos_token_id=tok.token_to_id("[SEP]"), tie_word_embeddings=True,
        )
        model = ModernBertForMaskedLM(config)
        assert model.config.layer_types == ["full_attention", "sliding_attention", "sliding_attention"]
    model.eval()
    gen = torch.Generator().manual_seed(spec["seed"] * 1000 + 7)
    with torch.no_grad():
        # Perturb every bias and norm weight so that a loader that drops one is caught.
        for name, p in model.named_parameters():
            if name.endswith("bias"):
                p.copy_(torch.randn(p.shape, generator=gen) * 0.1)
            elif "LayerNorm" in name or "layer_norm" in name or "norm" in name.split(".")[-2]:
                p.copy_(1.0 + torch.randn(p.shape, generator=gen) * 0.2)
            elif p.dim() == 2 and "embeddings" not in name:
                p.copy_(torch.randn(p.shape, generator=gen) * 0.2)
        if spec["arch"] != "modernbert":
            head = model.lm_head
            bias = torch.randn(head.bias.shape, generator=gen) - 3.0
            head.bias.copy_(bias)
            head.decoder.bias.copy_(bias)
            dec, emb = head.decoder.weight, model.roberta.embeddings.word_embeddings.weight
        else:
            model.decoder.bias.copy_(torch.randn(model.decoder.bias.shape, generator=gen) - 3.0)
            dec, emb = model.decoder.weight, model.model.embeddings.tok_embeddings.weight
        if spec["tied"]:
            assert dec.data_ptr() == emb.data_ptr(), "expected a tied decoder"
        else:
            assert dec.data_ptr() != emb.data_ptr(), "expected an untied decoder"
    return model


def save_model(folder: Path, spec: dict, corpus: list[str]):
    from sentence_transformers import SparseEncoder
    from sentence_transformers.sparse_encoder.modules import SpladePooling, Transformer
    from transformers import PreTrainedTokenizerFast

    tok, names = train_tokenizer(spec["arch"], spec["vocab"], corpus)
    hf_model = build_model(spec, tok)
    if folder.exists():
        shutil.rmtree(folder)
    with tempfile.TemporaryDirectory(prefix="splade-rs-fixture-") as tmp:
        hf_model.save_pretrained(tmp)
        fast = PreTrainedTokenizerFast(tokenizer_object=tok, model_max_length=spec["max_len"],
                                       model_input_names=["input_ids", "attention_mask"], **names)
        fast.save_pretrained(tmp)
        transformer = Transformer(tmp, transformer_task="fill-mask")
        pooling = SpladePooling(pooling_strategy="max", activation_function="relu",
                                embedding_dimension=hf_model.config.vocab_size)
        model = SparseEncoder(modules=[transformer, pooling], device="cpu")
        assert model.max_seq_length == spec["max_len"], model.max_seq_length
        model.save(str(folder), create_model_card=False)
    for p in folder.rglob("*.json"):
        assert "splade-rs-fixture-" not in p.read_text(encoding="utf-8"), p
    return SparseEncoder(str(folder), device="cpu")


def expected(model, texts: list[str], text_ids: list[int]) -> dict:
    # Texts holding the pad token itself: RoBERTa gives such a token the padding position and
    # does not count it in the positions of the tokens after it.
    pad = model.tokenizer.pad_token
    extra = [f"before {pad} after", f"{pad}{pad} two pads then words", pad]
    sub = [texts[i] for i in text_ids] + extra
    ids = []
    for t in sub:
        feats = model.preprocess([t])
        assert int(feats["attention_mask"].sum()) == feats["input_ids"].shape[1]
        assert "token_type_ids" not in feats
        ids.append(feats["input_ids"][0].tolist())
    # Mixed lengths in one batch: padding must not change any text's vector.
    emb = model.encode(sub, batch_size=16, convert_to_tensor=True, convert_to_sparse_tensor=False)
    config = model[0].auto_model.config
    return {
        "architecture": config.architectures[0],
        "max_seq_length": model.max_seq_length,
        "vocab_size": config.vocab_size,
        "text_ids": text_ids,
        "extra_texts": extra,
        "input_ids": ids,
        "longest": max(len(i) for i in ids),
        "vectors": sparse_rows(emb),
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, default=REPO_ROOT / "fixtures" / "encoder")
    args = ap.parse_args()
    torch.set_num_threads(2)
    texts = resolve(json.loads((args.out / "texts.json").read_text(encoding="utf-8")))
    corpus = [t for t in texts[:210] if t.strip()]
    for spec in MODELS:
        model = save_model(args.out / "models" / spec["name"], spec, corpus)
        exp = expected(model, texts, QUORA + SCIFACT + EDGE)
        assert exp["longest"] == spec["max_len"], "some text must reach the max length"
        write_json(args.out / spec["name"] / "expected.json", exp)
        size = sum(p.stat().st_size for p in (args.out / "models" / spec["name"]).rglob("*") if p.is_file())
        active = np.mean([len(r["indices"]) for r in exp["vectors"]])
        print(f"{spec['name']}: {size / 1024:.0f} KiB, vocab {exp['vocab_size']}, {active:.0f} active dims/text",
              file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
