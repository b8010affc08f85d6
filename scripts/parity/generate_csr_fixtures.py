#!/usr/bin/env python3
"""Generate parity fixtures for CSR (Contrastive Sparse Representation) models of splade-rs from the
Python reference (sentence-transformers 6.2 `SparseEncoder`: `Transformer` (feature-extraction) +
`Pooling` + `SparseAutoEncoder`).

What it writes (under fixtures/encoder/ of the repository):
  models/csr-bert/...       a tiny seeded random CSR model saved by `SparseEncoder.save()`: a 2-layer
                            BertModel (hidden 32, WordPiece vocabulary of 600 trained here on the texts
                            of texts.json, max length 48), Pooling (mean, include_prompt true),
                            SparseAutoEncoder (input 32, hidden_dim 128, k 8, k_aux 32, normalize false),
                            prompts {"query": "query: "}, similarity "dot"
  csr-bert/expected.json    token ids and the reference vectors of a subset of texts.json for the model
                            and for VARIANTS of it: the same folder with one config file edited (the test
                            applies the same edits to a copy), encoded by sentence-transformers:
                              pooling_mode cls / lasttoken / max / mean_sqrt_len_tokens / weightedmean,
                              SparseAutoEncoder normalize true, include_prompt false (with the query
                              prompt), max_active_dims 3 and 12 at encode time, k 5 in the config
                            For each vector the margin between the k-th and (k+1)-th pre-activation
                            (rows whose margin is below 1e-4 have no stable top k under float rounding;
                            the test leaves their active set unchecked and says how many).

Reference environment (never inside the repository): sentence-transformers 6.2.0, torch (CPU).
Run from the repository root; deterministic (seeded), rerunning gives identical files:
  /work/venv-ref/bin/python scripts/parity/generate_csr_fixtures.py [--out fixtures/encoder]
"""

from __future__ import annotations

import argparse
import copy
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
from shared_text import resolve  # noqa: E402  (fixtures refer to ../shared/data texts)

REPO_ROOT = Path(__file__).resolve().parents[2]
NAME = "csr-bert"
QUORA = list(range(0, 24))
SCIFACT = list(range(130, 142))
EDGE = list(range(210, 233))
SEED = 21

# (variant name, file relative to the model folder, JSON keys to set, encode kwargs)
VARIANTS = [
    ("mean", None, {}, {}),
    ("cls", "1_Pooling/config.json", {"pooling_mode": "cls"}, {}),
    ("lasttoken", "1_Pooling/config.json", {"pooling_mode": "lasttoken"}, {}),
    ("max", "1_Pooling/config.json", {"pooling_mode": "max"}, {}),
    ("mean_sqrt_len_tokens", "1_Pooling/config.json", {"pooling_mode": "mean_sqrt_len_tokens"}, {}),
    ("weightedmean", "1_Pooling/config.json", {"pooling_mode": "weightedmean"}, {}),
    ("normalize", "2_SparseAutoEncoder/config.json", {"normalize": True}, {}),
    ("query_prompt", None, {}, {"prompt_name": "query"}),
    ("exclude_prompt", "1_Pooling/config.json", {"include_prompt": False}, {"prompt_name": "query"}),
    ("max_active_dims_3", None, {}, {"max_active_dims": 3}),
    ("max_active_dims_12", None, {}, {"max_active_dims": 12}),
    ("k5", "2_SparseAutoEncoder/config.json", {"k": 5}, {}),
]


def f32(x) -> float:
    return float(str(np.float32(x)))


def write_json(path: Path, obj) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    text = json.dumps(obj, ensure_ascii=False, separators=(",", ":"), allow_nan=False)
    path.write_text(text + "\n", encoding="utf-8")


def train_tokenizer(corpus: list[str]):
    from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors, trainers

    specials = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    tok = Tokenizer(models.WordPiece(unk_token="[UNK]"))
    tok.normalizer = normalizers.BertNormalizer(lowercase=True)
    tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tok.decoder = decoders.WordPiece()
    trainer = trainers.WordPieceTrainer(vocab_size=600, special_tokens=specials, show_progress=False)
    tok.train_from_iterator(corpus, trainer)
    cls, sep = tok.token_to_id("[CLS]"), tok.token_to_id("[SEP]")
    tok.post_processor = processors.BertProcessing(("[SEP]", sep), ("[CLS]", cls))
    return tok


def build(folder: Path, corpus: list[str]):
    from sentence_transformers import SparseEncoder
    from sentence_transformers.sentence_transformer.modules import Pooling
    from sentence_transformers.sparse_encoder.modules import SparseAutoEncoder, Transformer
    from transformers import BertConfig, BertModel, PreTrainedTokenizerFast

    tok = train_tokenizer(corpus)
    torch.manual_seed(SEED)
    config = BertConfig(vocab_size=tok.get_vocab_size(), hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
                        intermediate_size=64, max_position_embeddings=48, type_vocab_size=2, initializer_range=0.2,
                        pad_token_id=0)
    bert = BertModel(config)
    bert.eval()
    gen = torch.Generator().manual_seed(SEED * 1000 + 7)
    with torch.no_grad():
        for name, p in bert.named_parameters():
            if name.endswith("bias"):
                p.copy_(torch.randn(p.shape, generator=gen) * 0.1)
            elif "LayerNorm" in name:
                p.copy_(1.0 + torch.randn(p.shape, generator=gen) * 0.2)
    if folder.exists():
        shutil.rmtree(folder)
    with tempfile.TemporaryDirectory(prefix="splade-rs-fixture-") as tmp:
        bert.save_pretrained(tmp)
        fast = PreTrainedTokenizerFast(tokenizer_object=tok, model_max_length=48, unk_token="[UNK]",
                                       cls_token="[CLS]", sep_token="[SEP]", pad_token="[PAD]", mask_token="[MASK]")
        fast.save_pretrained(tmp)
        transformer = Transformer(tmp, transformer_task="feature-extraction")
        pooling = Pooling(32, pooling_mode="mean")
        sae = SparseAutoEncoder(input_dim=32, hidden_dim=128, k=8, k_aux=32, normalize=False, dead_threshold=30)
        with torch.no_grad():
            sae.pre_bias.copy_(torch.randn(32, generator=gen) * 0.1)
            sae.encoder.weight.copy_(torch.randn(128, 32, generator=gen) * 0.3)
            sae.latent_bias.copy_(torch.randn(128, generator=gen) * 0.1)
        model = SparseEncoder(modules=[transformer, pooling, sae], device="cpu", prompts={"query": "query: "})
        model.save(str(folder), create_model_card=False)
    for p in folder.rglob("*.json"):
        assert "splade-rs-fixture-" not in p.read_text(encoding="utf-8"), p
    return SparseEncoder(str(folder), device="cpu")


def encode_variant(model, texts: list[str], kwargs: dict) -> tuple[list[dict], list[float]]:
    """Vectors (sentence-transformers' encode) and each text's top-k margin of pre-activations."""
    emb = model.encode(texts, batch_size=16, convert_to_tensor=True, convert_to_sparse_tensor=False, **kwargs)
    # The pre-activations, to know which rows have a well-defined top k.
    sae = model[2]
    k = kwargs.get("max_active_dims") or sae.k
    prompt = model.prompts.get(kwargs["prompt_name"]) if "prompt_name" in kwargs else None
    feats = model.preprocess(texts, prompt=prompt) if prompt else model.preprocess(texts)
    with torch.inference_mode():
        out = model[1](model[0](dict(feats)))
        x, _ = sae.prepare(out["sentence_embedding"])
        pre = sae.encode_pre_act(x)
    top = torch.topk(pre, k + 1, dim=-1).values
    margins = (top[:, k - 1] - top[:, k]).tolist()
    rows = []
    dense = emb.detach().cpu().float()
    assert torch.isfinite(dense).all() and (dense >= 0).all()
    for row in dense:
        idx = torch.nonzero(row != 0, as_tuple=False).flatten()
        rows.append({"indices": idx.tolist(), "values": [f32(v) for v in row[idx].tolist()]})
    return rows, [f32(m) for m in margins]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, default=REPO_ROOT / "fixtures" / "encoder")
    args = ap.parse_args()
    torch.set_num_threads(2)
    from sentence_transformers import SparseEncoder

    texts = resolve(json.loads((args.out / "texts.json").read_text(encoding="utf-8")))
    corpus = [t for t in texts[:210] if t.strip()]
    folder = args.out / "models" / NAME
    model = build(folder, corpus)
    ids = QUORA + SCIFACT + EDGE
    sub = [texts[i] for i in ids]
    input_ids = [model.preprocess([t])["input_ids"][0].tolist() for t in sub]
    assert max(len(i) for i in input_ids) == 48, "some text must reach the max length"
    variants = []
    for name, file, edits, kwargs in VARIANTS:
        with tempfile.TemporaryDirectory(prefix="splade-rs-csr-") as tmp:
            copy_dir = Path(tmp) / NAME
            shutil.copytree(folder, copy_dir)
            if file:
                path = copy_dir / file
                config = json.loads(path.read_text(encoding="utf-8"))
                config.update(copy.deepcopy(edits))
                path.write_text(json.dumps(config, indent=2) + "\n", encoding="utf-8")
            variant_model = SparseEncoder(str(copy_dir), device="cpu")
            vectors, margins = encode_variant(variant_model, sub, kwargs)
        variants.append({"name": name, "file": file, "edits": edits, "encode": kwargs, "vectors": vectors,
                         "margins": margins})
        unstable = sum(m < 1e-4 for m in margins)
        active = np.mean([len(r["indices"]) for r in vectors])
        print(f"{name}: {active:.1f} active dims/text, {unstable} rows without a stable top k", file=sys.stderr)
    write_json(args.out / NAME / "expected.json", {
        "text_ids": ids,
        "input_ids": input_ids,
        "dimension": model.get_embedding_dimension(),
        "similarity_fn_name": model.similarity_fn_name,
        "max_active_dims": model.max_active_dims,
        "variants": variants,
    })
    size = sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())
    print(f"{NAME}: {size / 1024:.0f} KiB", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
