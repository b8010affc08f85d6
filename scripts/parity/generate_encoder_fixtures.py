#!/usr/bin/env python3
"""Generate encoder parity fixtures for splade-rs from the Python reference
(sentence-transformers 6.2.0 `SparseEncoder`).

What it writes (under fixtures/encoder/ of the repository):
  texts.json                      list of input strings (Quora questions, SciFact passages, edge cases)
  texts_info.json                 where each slice of texts.json comes from
  models/<name>/...               tiny random SPLADE models (full 30522 vocab), see MODEL_SPECS
  <name>/expected.json            reference outputs for each model (+ splade-tiny/expected.json)

Reference environment (never inside the repository):
  python3 -m venv DIR && DIR/bin/pip install sentence-transformers==6.2.0 torch scikit-learn

Run from the repository root (deterministic: rerunning gives byte-identical files
with the same package versions):
  HF_HUB_OFFLINE=1 DIR/bin/python scripts/parity/generate_encoder_fixtures.py
  options: [--splade-tiny MODEL_DIR] [--data-dir ../shared/data] [--out fixtures/encoder]

--splade-tiny defaults to ~/.cache/splade-rs/models/splade-tiny (the folder the Rust side caches
the real splade-tiny BertForMaskedLM in); the script stops with an error if it is missing.
--data-dir must hold quora-pairs/test/pairs.tsv and scifact/corpus.jsonl (read-only).

See scripts/parity/SEMANTICS.md for the reference semantics these fixtures pin down.
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import json
import os
import random
import shutil
import sys
import tempfile
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")

import numpy as np  # noqa: E402
import torch  # noqa: E402
from shared_text import to_refs  # fixtures refer to ../shared/data texts, never copy them

REPO_ROOT = Path(__file__).resolve().parents[2]
VOCAB_SIZE = 30522
DEFAULT_SPLADE_TINY = Path.home() / ".cache" / "splade-rs" / "models" / "splade-tiny"

N_QUORA = 130
N_SCIFACT_LONG = 60  # > 512 word pieces (with [CLS]/[SEP])
N_SCIFACT_MID = 20  # 257..512 word pieces

EDGE_CASES = [
    "",
    "   ",
    "\t\n",
    ".",
    "?",
    "a" * 3000,  # one 3,000-char "word": longer than WordPiece max_input_chars_per_word (100) -> [UNK]
    "hello" * 600,  # a repeated real word without spaces, 3,000 chars
    "abc" * 33,  # 99-char word: just under max_input_chars_per_word -> split into word pieces
    "abc" * 34,  # 102-char word: just over -> [UNK]
    "Crème brûlée à la façon de Zoë",
    "naïve café",
    "机器学习是什么？",
    "東京の天気",
    "👩\u200d👩\u200d👧\u200d👦 family 🏳️\u200d🌈",
    "ما هو التعلم الآلي؟",
    "שלום עולם",
    "<p>Hello <b>world</b> &amp; co</p>",
    "zero\u200bwidth\u200cjoin\u200dhere\ufeff",
    "HeLLo WoRLD",
    "e\u0301",
    "a\u0000b\u0007c",
    " leading and trailing  ",
    "tabs\tand  multiple   spaces\t\t here",
]

# Random tiny models. All: 2 layers, 2 heads, hidden 8, intermediate 16, 512 positions,
# initializer_range 0.5, every LayerNorm/bias perturbed, MLM output bias ~ N(bias_mean, 1).
# bias_mean is tuned so that the mean number of active dims per text is ~170-240 (not thousands).
MODEL_SPECS = [
    {
        "name": "distilbert-tied-seedlayout",
        "arch": "distilbert",
        "tied": True,
        "layout": "seed",
        "pooling_strategy": "max",
        "activation_function": "relu",
        "max_seq_length": 64,
        "prompts": {"query": "", "document": ""},
        "similarity_fn_name": "dot",
        "seed": 11,
        "bias_mean": -5.0,
    },
    {
        "name": "distilbert-untied-v6",
        "arch": "distilbert",
        "tied": False,
        "layout": "v6",
        "pooling_strategy": "sum",
        "activation_function": "log1p_relu",
        "max_seq_length": 32,
        "prompts": None,  # ST defaults: {"query": "", "document": ""}
        "similarity_fn_name": None,  # saved as null -> "dot" on first use
        "seed": 22,
        "bias_mean": -5.5,
    },
    {
        "name": "bert-tied-v6",
        "arch": "bert",
        "tied": True,
        "layout": "v6",
        "pooling_strategy": "max",
        "activation_function": "log1p_relu",
        "max_seq_length": 48,
        "prompts": {"query": "query: ", "document": "passage: "},
        "similarity_fn_name": "cosine",
        "seed": 33,
        "bias_mean": -5.0,
    },
    {
        "name": "bert-untied-seedlayout",
        "arch": "bert",
        "tied": False,
        "layout": "seed",
        "vocab_txt": True,  # tokenizer given as vocab.txt only (no tokenizer.json)
        "pooling_strategy": "sum",
        "activation_function": "relu",
        "max_seq_length": 128,
        "prompts": {"query": "", "document": ""},
        "similarity_fn_name": "dot",
        "seed": 44,
        "bias_mean": -5.5,
    },
]

SIMILARITY_FNS = ["dot", "cosine", "euclidean", "manhattan"]
MAX_ACTIVE_DIMS_KS = [1, 8, 32]


# --------------------------------------------------------------------------------------------
# helpers
# --------------------------------------------------------------------------------------------


def f32(x) -> float:
    """Shortest decimal that round-trips the float32 value (parses back to the same f32)."""
    return float(str(np.float32(x)))


def f32_list(xs) -> list[float]:
    return [f32(x) for x in np.asarray(xs, dtype=np.float32).ravel().tolist()]


def write_json(path: Path, obj, compact: bool = True) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    if compact:
        text = json.dumps(obj, ensure_ascii=False, separators=(",", ":"), allow_nan=False)
    else:
        text = json.dumps(obj, ensure_ascii=False, indent=1, allow_nan=False)
    path.write_text(text + "\n", encoding="utf-8")


def sparse_rows(emb: torch.Tensor) -> list[dict]:
    """2D embeddings (sparse or dense) -> per row {"indices": ascending, "values": f32} for value > 0.

    Asserts there are no negative or non-finite entries (SPLADE outputs are >= 0)."""
    dense = emb.to_dense() if emb.is_sparse else emb
    dense = dense.detach().cpu().float()
    if dense.ndim == 1:
        dense = dense.unsqueeze(0)
    assert torch.isfinite(dense).all()
    assert (dense >= 0).all(), "unexpected negative entries"
    rows = []
    for row in dense:
        idx = torch.nonzero(row > 0, as_tuple=False).flatten()
        rows.append({"indices": idx.tolist(), "values": f32_list(row[idx].numpy())})
    return rows


def sparse_1d(t: torch.Tensor) -> dict:
    """1D sparse/dense tensor -> {"indices", "values"} for every stored nonzero entry."""
    t = t.coalesce() if t.is_sparse else t.to_sparse().coalesce()
    idx = t.indices()[0]
    vals = t.values()
    order = torch.argsort(idx)
    return {"indices": idx[order].tolist(), "values": f32_list(vals[order].numpy())}


def decode_to_json(decoded) -> list:
    return [[tok, f32(w)] for tok, w in decoded]


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


# --------------------------------------------------------------------------------------------
# texts
# --------------------------------------------------------------------------------------------


def load_quora(data_dir: Path, n: int) -> list[str]:
    path = data_dir / "quora-pairs" / "test" / "pairs.tsv"
    out: list[str] = []
    seen: set[str] = set()
    with open(path, encoding="utf-8", newline="") as f:
        reader = csv.reader(f, delimiter="\t", quoting=csv.QUOTE_NONE)
        header = next(reader)
        assert header[:2] == ["sentence1", "sentence2"], header
        for row in reader:
            for s in row[:2]:
                if s not in seen:
                    seen.add(s)
                    out.append(s)
                    if len(out) == n:
                        return out
    raise RuntimeError("not enough Quora questions")


def load_scifact(data_dir: Path, tokenizer_json: Path) -> tuple[list[str], list[str], list[int]]:
    """SciFact passages as `title + " " + text` (the corpus construction in the docstring example of
    sentence_transformers/sparse_encoder/evaluation/sparse_information_retrieval.py), 60 longer than
    512 word pieces and 20 between 257 and 512, seeded choice, kept in corpus order."""
    from tokenizers import Tokenizer

    tok = Tokenizer.from_file(str(tokenizer_json))
    tok.no_truncation()
    tok.no_padding()
    docs = []
    with open(data_dir / "scifact" / "corpus.jsonl", encoding="utf-8") as f:
        for line in f:
            d = json.loads(line)
            if not d["title"].strip():
                continue
            text = d["title"] + " " + d["text"]
            docs.append((d["_id"], text, len(tok.encode(text).ids)))
    long_ = [i for i, (_, _, n) in enumerate(docs) if n > 512]
    mid = [i for i, (_, _, n) in enumerate(docs) if 256 < n <= 512]
    rng = random.Random(20240611)
    chosen = sorted(rng.sample(long_, N_SCIFACT_LONG) + rng.sample(mid, N_SCIFACT_MID))
    return [docs[i][1] for i in chosen], [docs[i][0] for i in chosen], [docs[i][2] for i in chosen]


# --------------------------------------------------------------------------------------------
# random models
# --------------------------------------------------------------------------------------------


def build_random_hf_model(spec: dict):
    from transformers import BertConfig, BertForMaskedLM, DistilBertConfig, DistilBertForMaskedLM

    torch.manual_seed(spec["seed"])
    if spec["arch"] == "bert":
        config = BertConfig(
            vocab_size=VOCAB_SIZE,
            hidden_size=8,
            num_hidden_layers=2,
            num_attention_heads=2,
            intermediate_size=16,
            max_position_embeddings=512,
            initializer_range=0.5,
            tie_word_embeddings=spec["tied"],
        )
        model = BertForMaskedLM(config)
    else:
        config = DistilBertConfig(
            vocab_size=VOCAB_SIZE,
            dim=8,
            n_layers=2,
            n_heads=2,
            hidden_dim=16,
            max_position_embeddings=512,
            initializer_range=0.5,
            tie_word_embeddings=spec["tied"],
        )
        model = DistilBertForMaskedLM(config)
    model.eval()

    gen = torch.Generator().manual_seed(spec["seed"] * 1000 + 7)
    with torch.no_grad():
        # Perturb every bias and LayerNorm weight so that a loader that drops one is caught.
        for name, p in model.named_parameters():
            if name.endswith("bias"):
                p.copy_(torch.randn(p.shape, generator=gen) * 0.1)
            elif "LayerNorm" in name or "layer_norm" in name:
                p.copy_(1.0 + torch.randn(p.shape, generator=gen) * 0.2)
        mlm_bias = torch.randn(VOCAB_SIZE, generator=gen) + spec["bias_mean"]
        if spec["arch"] == "bert":
            pred = model.cls.predictions
            pred.bias.copy_(mlm_bias)
            pred.decoder.bias.copy_(mlm_bias)  # same Parameter when tied; kept equal when untied
            emb = model.bert.embeddings.word_embeddings.weight
            dec = pred.decoder.weight
        else:
            model.vocab_projector.bias.copy_(mlm_bias)
            emb = model.distilbert.embeddings.word_embeddings.weight
            dec = model.vocab_projector.weight
        if spec["tied"]:
            assert dec is emb or dec.data_ptr() == emb.data_ptr(), "expected tied decoder"
        else:
            assert dec.data_ptr() != emb.data_ptr() and not torch.equal(dec, emb), "expected untied decoder"
    return model


def write_tokenizer(folder: Path, spec: dict, splade_tiny: Path) -> None:
    tok_cfg = json.loads((splade_tiny / "tokenizer_config.json").read_text(encoding="utf-8"))
    if spec.get("vocab_txt"):
        tok_json = json.loads((splade_tiny / "tokenizer.json").read_text(encoding="utf-8"))
        vocab = tok_json["model"]["vocab"]
        by_id = sorted(vocab.items(), key=lambda kv: kv[1])
        assert [i for _, i in by_id] == list(range(len(by_id)))
        (folder / "vocab.txt").write_text("".join(t + "\n" for t, _ in by_id), encoding="utf-8")
        # Like bert-base-uncased's tokenizer_config.json: no tokenizer.json, no special_tokens_map.json.
        write_json(folder / "tokenizer_config.json", {"do_lower_case": True, "model_max_length": 512}, compact=False)
        return
    shutil.copyfile(splade_tiny / "tokenizer.json", folder / "tokenizer.json")
    if spec["arch"] == "distilbert":
        tok_cfg["tokenizer_class"] = "DistilBertTokenizer"
    write_json(folder / "tokenizer_config.json", tok_cfg, compact=False)


def write_seed_layout(folder: Path, spec: dict, hf_model, splade_tiny: Path) -> None:
    """The sentence-transformers v4/v5 SparseEncoder layout, written by hand."""
    hf_model.save_pretrained(str(folder))
    write_tokenizer(folder, spec, splade_tiny)
    modules = [
        {"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.sparse_encoder.models.MLMTransformer"},
        {
            "idx": 1,
            "name": "1",
            "path": "1_SpladePooling",
            "type": "sentence_transformers.sparse_encoder.models.SpladePooling",
        },
    ]
    write_json(folder / "modules.json", modules, compact=False)
    write_json(
        folder / "sentence_bert_config.json",
        {"max_seq_length": spec["max_seq_length"], "do_lower_case": False},
        compact=False,
    )
    write_json(
        folder / "1_SpladePooling" / "config.json",
        {
            "pooling_strategy": spec["pooling_strategy"],
            "activation_function": spec["activation_function"],
            "word_embedding_dimension": VOCAB_SIZE,
        },
        compact=False,
    )
    write_json(
        folder / "config_sentence_transformers.json",
        {
            "model_type": "SparseEncoder",
            "__version__": {"sentence_transformers": "5.0.0", "transformers": "4.53.0", "pytorch": "2.7.1"},
            "prompts": spec["prompts"],
            "default_prompt_name": None,
            "similarity_fn_name": spec["similarity_fn_name"],
        },
        compact=False,
    )


def write_v6_layout(folder: Path, spec: dict, hf_model, splade_tiny: Path) -> None:
    """Let sentence-transformers 6 build the pipeline and write it with SparseEncoder.save()."""
    from sentence_transformers import SparseEncoder
    from sentence_transformers.sparse_encoder.modules import SpladePooling, Transformer

    with tempfile.TemporaryDirectory(prefix="splade-rs-fixture-") as tmp:
        hf_model.save_pretrained(tmp)
        write_tokenizer(Path(tmp), spec, splade_tiny)
        transformer = Transformer(tmp, transformer_task="fill-mask")
        pooling = SpladePooling(
            pooling_strategy=spec["pooling_strategy"],
            activation_function=spec["activation_function"],
            embedding_dimension=VOCAB_SIZE,
        )
        kwargs = {}
        if spec["prompts"] is not None:
            kwargs["prompts"] = spec["prompts"]
        if spec["similarity_fn_name"] is not None:
            kwargs["similarity_fn_name"] = spec["similarity_fn_name"]
        model = SparseEncoder(modules=[transformer, pooling], device="cpu", **kwargs)
        model.max_seq_length = spec["max_seq_length"]
        model.save(str(folder), create_model_card=False)
    # The saved folder must not depend on the temporary path.
    for p in folder.rglob("*"):
        if p.is_file() and p.suffix == ".json":
            assert "splade-rs-fixture-" not in p.read_text(encoding="utf-8"), p


def build_models(out: Path, splade_tiny: Path) -> None:
    models_dir = out / "models"
    for spec in MODEL_SPECS:
        folder = models_dir / spec["name"]
        if folder.exists():
            shutil.rmtree(folder)
        folder.mkdir(parents=True)
        hf_model = build_random_hf_model(spec)
        if spec["layout"] == "seed":
            write_seed_layout(folder, spec, hf_model, splade_tiny)
        else:
            write_v6_layout(folder, spec, hf_model, splade_tiny)


# --------------------------------------------------------------------------------------------
# reference outputs
# --------------------------------------------------------------------------------------------


def check_loaded(model, spec: dict | None) -> None:
    from sentence_transformers.sparse_encoder.modules import MLMTransformer, SpladePooling, Transformer

    mods = list(model)
    assert len(mods) == 2, mods
    assert isinstance(mods[0], Transformer) and mods[0].transformer_task == "fill-mask", mods[0]
    assert isinstance(mods[1], SpladePooling), mods[1]
    if spec is None:  # plain HF folder -> default modules
        assert type(mods[0]) is Transformer
        assert mods[1].pooling_strategy == "max" and mods[1].activation_function == "relu"
        return
    if spec["layout"] == "seed":
        assert type(mods[0]) is MLMTransformer, type(mods[0])
    else:
        assert type(mods[0]) is Transformer, type(mods[0])
    assert mods[1].pooling_strategy == spec["pooling_strategy"], mods[1]
    assert mods[1].activation_function == spec["activation_function"], mods[1]
    assert mods[1].embedding_dimension == VOCAB_SIZE
    assert model.max_seq_length == spec["max_seq_length"], (model.max_seq_length, spec)
    arch = type(model.transformers_model).__name__
    assert arch == ("BertForMaskedLM" if spec["arch"] == "bert" else "DistilBertForMaskedLM"), arch
    expected_sim = spec["similarity_fn_name"] or None
    assert model._similarity_fn_name == expected_sim, (model._similarity_fn_name, expected_sim)
    if spec.get("vocab_txt"):
        assert not (Path(spec["_folder"]) / "tokenizer.json").exists()


def feature_ids(model, texts: list[str], prompt: str | None = None) -> tuple[list[list[int]], list[str]]:
    ids = []
    keys = None
    for t in texts:
        feats = model.preprocess([t], prompt=prompt)
        k = sorted(key for key, v in feats.items() if isinstance(v, torch.Tensor))
        keys = k if keys is None else keys
        assert keys == k
        assert int(feats["attention_mask"].sum()) == feats["input_ids"].shape[1]
        if "token_type_ids" in feats:
            assert int(feats["token_type_ids"].abs().sum()) == 0
        ids.append(feats["input_ids"][0].tolist())
    return ids, keys


def compute_expected(model, texts: list[str], text_ids: list[int], groups: dict, *, with_input_ids: bool,
                     with_prompts: bool) -> dict:
    sub = [texts[i] for i in text_ids]
    pool = model[1]
    res: dict = {
        "max_seq_length": model.max_seq_length,
        "pooling_strategy": pool.pooling_strategy,
        "activation_function": pool.activation_function,
        "similarity_fn_name": model.similarity_fn_name,  # property: None -> "dot" on first access
        "prompts": dict(model.prompts),
        "default_prompt_name": model.default_prompt_name,
        "model_max_active_dims": model.max_active_dims,
        "text_ids": text_ids,
    }

    emb = model.encode(sub, batch_size=32)  # sparse COO [n, vocab]
    assert emb.is_sparse and emb.shape == (len(sub), VOCAB_SIZE)
    res["encode"] = sparse_rows(emb)

    if with_input_ids:
        ids, keys = feature_ids(model, sub)
        res["input_ids"] = ids
        res["model_input_keys"] = keys
    else:
        _, keys = feature_ids(model, sub[:1])
        res["model_input_keys"] = keys

    # encode_query / encode_document (prompts)
    if with_prompts:
        qd_ids = groups["qd"]
        qd = [texts[i] for i in qd_ids]
        res["prompt_text_ids"] = qd_ids
        res["encode_query"] = sparse_rows(model.encode_query(qd, batch_size=32))
        res["encode_document"] = sparse_rows(model.encode_document(qd, batch_size=32))
        res["encode_query_input_ids"] = feature_ids(model, qd, prompt=model.prompts.get("query"))[0]
        res["encode_document_input_ids"] = feature_ids(model, qd, prompt=model.prompts.get("document"))[0]

    # max_active_dims
    mad_ids = text_ids[:12]
    mad_texts = [texts[i] for i in mad_ids]
    res["max_active_dims"] = {
        "text_ids": mad_ids,
        **{str(k): sparse_rows(model.encode(mad_texts, batch_size=32, max_active_dims=k)) for k in MAX_ACTIVE_DIMS_KS},
    }

    # similarity
    pos = {tid: n for n, tid in enumerate(text_ids)}
    q_ids, d_ids = groups["sim_queries"], groups["sim_docs"]
    q_emb = torch.stack([emb[pos[i]] for i in q_ids])
    d_emb = torch.stack([emb[pos[i]] for i in d_ids])
    zero = torch.sparse_coo_tensor(torch.zeros((2, 0), dtype=torch.long), torch.zeros(0), (1, VOCAB_SIZE), check_invariants=True)
    zero2 = torch.sparse_coo_tensor(torch.zeros((2, 0), dtype=torch.long), torch.zeros(0), (2, VOCAB_SIZE), check_invariants=True)
    zero_vs = torch.stack([d_emb[0], torch.sparse_coo_tensor(torch.zeros((1, 0), dtype=torch.long), torch.zeros(0),
                                                             (VOCAB_SIZE,), check_invariants=True)])
    original = model._similarity_fn_name
    sims = {"query_ids": q_ids, "doc_ids": d_ids}
    for fn in SIMILARITY_FNS:
        model.similarity_fn_name = fn
        mat = model.similarity(q_emb, d_emb)
        pw = model.similarity_pairwise(q_emb, d_emb)
        zmat = model.similarity(zero, d_emb)
        zpw = model.similarity_pairwise(zero2, zero_vs)
        assert mat.shape == (len(q_ids), len(d_ids)) and pw.shape == (len(q_ids),)
        sims[fn] = {
            "matrix": [f32_list(r) for r in mat.numpy()],
            "pairwise": f32_list(pw.numpy()),
            # zero vector (no active dims) vs docs, and pairwise [zero, zero] vs [docs[0], zero]
            "zero_matrix": f32_list(zmat.numpy()),
            "zero_pairwise": f32_list(zpw.numpy()),
        }
    model.similarity_fn_name = original
    res["similarity"] = sims

    # decode
    dec_ids = text_ids[:10]
    dec_emb = torch.stack([emb[pos[i]] for i in dec_ids])
    res["decode"] = {
        "text_ids": dec_ids,
        "top_k": 10,
        "tokens": [decode_to_json(d) for d in model.decode(dec_emb, top_k=10)],
    }
    full_ids = groups["decode_full"]
    res["decode_all"] = {
        "text_ids": full_ids,
        "tokens": [decode_to_json(model.decode(emb[pos[i]], top_k=None)) for i in full_ids],
    }

    # sparsity
    sp = model.sparsity(emb)
    res["sparsity"] = {"active_dims": float(sp["active_dims"]), "sparsity_ratio": float(sp["sparsity_ratio"])}

    # intersection
    inters = []
    for a, b in groups["intersection"]:
        inter = model.intersection(emb[pos[a]], emb[pos[b]])
        inters.append({"text_ids": [a, b], **sparse_1d(inter)})
    res["intersection"] = inters
    return res


def choose_groups(text_ids: list[int], info: dict) -> dict:
    quora = [i for i in text_ids if info["quora"][0] <= i < info["quora"][1]]
    sci = [i for i in text_ids if info["scifact"][0] <= i < info["scifact"][1]]
    edge = [i for i in text_ids if info["edge"][0] <= i < info["edge"][1]]
    empty = info["edge"][0]  # "" is the first edge case
    hello = info["edge"][0] + EDGE_CASES.index("HeLLo WoRLD")
    return {
        "sim_queries": quora[:8],
        "sim_docs": sci[:4] + quora[8:12],
        "decode_full": [quora[0], sci[0]],
        "intersection": [(quora[0], quora[1]), (quora[2], sci[0]), (sci[1], sci[1])],
        "qd": quora[:5] + sci[:3] + [empty, hello],
        "edge": edge,
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--splade-tiny", type=Path, default=None, help=f"default: {DEFAULT_SPLADE_TINY}")
    ap.add_argument("--data-dir", type=Path, default=REPO_ROOT / ".." / "shared" / "data")
    ap.add_argument("--out", type=Path, default=REPO_ROOT / "fixtures" / "encoder")
    args = ap.parse_args()

    splade_tiny = args.splade_tiny
    if splade_tiny is None:
        if not DEFAULT_SPLADE_TINY.is_dir():
            ap.error(f"--splade-tiny not given and {DEFAULT_SPLADE_TINY} does not exist")
        splade_tiny = DEFAULT_SPLADE_TINY
    for f in ("config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json"):
        if not (splade_tiny / f).is_file():
            ap.error(f"{splade_tiny} lacks {f}")
    data_dir = args.data_dir.resolve()
    out = args.out.resolve()

    torch.set_num_threads(2)
    torch.manual_seed(0)
    import sentence_transformers
    import transformers
    from sentence_transformers import SparseEncoder

    # ---- texts
    quora = load_quora(data_dir, N_QUORA)
    sci_texts, sci_ids, sci_lens = load_scifact(data_dir, splade_tiny / "tokenizer.json")
    texts = quora + sci_texts + EDGE_CASES
    info = {
        "quora": [0, len(quora)],
        "scifact": [len(quora), len(quora) + len(sci_texts)],
        "edge": [len(quora) + len(sci_texts), len(texts)],
        "quora_source": "quora-pairs/test/pairs.tsv: first distinct sentence1/sentence2 values in row order",
        "scifact_source": "scifact/corpus.jsonl: title + ' ' + text; 60 with > 512 word pieces, 20 with 257..512",
        "scifact_ids": sci_ids,
        "scifact_wordpieces": sci_lens,
    }
    out.mkdir(parents=True, exist_ok=True)
    write_json(out / "texts.json", to_refs(texts), compact=False)
    write_json(out / "texts_info.json", info, compact=False)

    all_ids = list(range(len(texts)))
    q_rng = random.Random(7)
    random_subset = sorted(
        list(range(15))
        + sorted(q_rng.sample(range(info["scifact"][0], info["scifact"][1]), 10))
        + list(range(info["edge"][0], info["edge"][1]))
    )

    # ---- random models
    build_models(out, splade_tiny)

    summary = []
    versions = {
        "sentence_transformers": sentence_transformers.__version__,
        "transformers": transformers.__version__,
        "torch": torch.__version__,
    }

    # ---- splade-tiny (plain HF BertForMaskedLM folder)
    jobs = [("splade-tiny", splade_tiny, None, all_ids)]
    for spec in MODEL_SPECS:
        spec["_folder"] = str(out / "models" / spec["name"])
        jobs.append((spec["name"], Path(spec["_folder"]), spec, random_subset))

    vocab_txt_ids_match = None
    for name, folder, spec, ids in jobs:
        model = SparseEncoder(str(folder), device="cpu")
        model.eval()
        check_loaded(model, spec)
        groups = choose_groups(ids, info)
        with_input_ids = spec is None or bool(spec.get("vocab_txt"))
        with_prompts = spec is None or spec["name"] == "bert-tied-v6"
        res = compute_expected(model, texts, ids, groups, with_input_ids=with_input_ids, with_prompts=with_prompts)
        res = {"model": name, "model_path": None if spec is None else f"models/{name}", "versions": versions, **res}
        if spec is not None and spec.get("vocab_txt"):
            # vocab.txt tokenizer must give the same ids as tokenizer.json truncated to the same length
            ref = SparseEncoder(str(splade_tiny), device="cpu")
            ref.max_seq_length = spec["max_seq_length"]
            ref_ids, _ = feature_ids(ref, [texts[i] for i in ids])
            vocab_txt_ids_match = ref_ids == res["input_ids"]
            res["input_ids_match_tokenizer_json"] = vocab_txt_ids_match
        write_json(out / name / "expected.json", res)
        active = [len(r["indices"]) for r in res["encode"]]
        summary.append((name, len(ids), float(np.mean(active)), min(active), max(active), res["max_seq_length"]))

    # ---- summary
    print(f"sentence-transformers {versions['sentence_transformers']}, transformers {versions['transformers']}, "
          f"torch {versions['torch']}")
    print(f"texts: {len(texts)} ({info})"[:200])
    print("active dims per text (encode):")
    for name, n, mean, lo, hi, msl in summary:
        print(f"  {name:28s} texts={n:4d} mean={mean:8.1f} min={lo:5d} max={hi:5d} max_seq_length={msl}")
    if vocab_txt_ids_match is not None:
        print(f"vocab.txt input_ids == tokenizer.json input_ids: {vocab_txt_ids_match}")
    total = 0
    print("files:")
    for p in sorted(out.rglob("*")):
        if p.is_file():
            size = p.stat().st_size
            total += size
            print(f"  {size:10d}  {p.relative_to(out)}  {sha256(p)[:12]}")
    print(f"total: {total} bytes ({total / 1e6:.2f} MB)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
