"""Reference model card for `splade train` (issue #15 section 5).

Trains a tiny SPLADE run with sentence-transformers (SpladeLoss wrapping
SparseMultipleNegativesRankingLoss, an eval_dataset of 4 Quora dev duplicates (validation loss),
a SparseBinaryClassificationEvaluator on a few Quora dev pairs, a
SparseInformationRetrievalEvaluator on a tiny SciFact subset and a SparseNanoBEIREvaluator on
the two subsets of fixtures/eval/nanobeir_evaluator/, and SparseEmbeddingSimilarityEvaluator,
SparseTripletEvaluator and SparseRerankingEvaluator on the first rows of the STS-B and SciFact
fixtures of fixtures/eval/evaluators/; evaluation every step)
and writes:

* fixtures/train/card/data.json: the run's data (train.tsv, eval.tsv, dev.tsv, scifact/), which the
  Rust test writes out and trains on too, its texts as references into ../shared/data;
* fixtures/train/card/README.md: the card sentence-transformers writes (no weights kept; the
  shared-data texts it quotes replaced by their references);
* fixtures/train/card/structure.json: its section headings and table header rows;
* fixtures/train/card/eval_loss.json: SpladeLoss of the untrained model on eval.tsv.

The trainer needs `datasets` and `accelerate`, which the reference venv lacks; they were added
without touching it (pyarrow 24; dill < 0.4.2):

    pip install --no-deps --target /tmp/card-pydeps datasets accelerate pyarrow==24.0.0 dill \
        multiprocess xxhash pandas requests psutil python-dateutil pytz tzdata six \
        charset-normalizer idna urllib3 certifi
    PYTHONPATH=/tmp/card-pydeps HF_HUB_OFFLINE=1 \
        /work/venv-ref/bin/python scripts/parity/generate_model_card_fixture.py

The Rust test (crates/train/tests/card.rs) compares the headings and table header rows of the
card `splade train` writes for the same run with structure.json.
"""

import csv
import json
import os
import tempfile
from pathlib import Path

from shared_text import DEFAULT_DATA, redact_markdown, resolve, to_refs

ROOT = Path(__file__).resolve().parents[2]
OUT = ROOT / "fixtures/train/card"
# The run's data files are written to a temporary folder; the fixture keeps them as
# data.json, their texts as references into ../shared/data (see shared_text.py).
DATA = Path(tempfile.mkdtemp(prefix="splade-card-data-"))
SHARED = DEFAULT_DATA
MODEL = ROOT / "fixtures/encoder/models/bert-tied-v6"
NANO = ROOT / "fixtures/eval/nanobeir_evaluator/reference.json"
EVALUATORS = ROOT / "fixtures/eval/evaluators"
SMALL = 8


def short(text, n=120):
    text = " ".join(text.split())
    return text if len(text) <= n else text[:n].rsplit(" ", 1)[0]


def write_data():
    DATA.mkdir(parents=True, exist_ok=True)
    # Training: the first 8 duplicate Quora pairs (short questions), anchor/positive.
    rows = []
    with open(SHARED / "quora-pairs/train/pairs.tsv", newline="") as f:
        for r in csv.DictReader(f, delimiter="\t", quoting=csv.QUOTE_NONE):
            if r["label"] == "1" and len(r["sentence1"]) < 80 and len(r["sentence2"]) < 80:
                rows.append((r["sentence1"], r["sentence2"]))
            if len(rows) == 8:
                break
    with open(DATA / "train.tsv", "w") as f:
        f.write("anchor\tpositive\n")
        for a, p in rows:
            f.write(f"{a}\t{p}\n")
    # Evaluation rows (eval_dataset, for the validation loss): the first 4 duplicate Quora dev
    # pairs, anchor/positive.
    rows = []
    with open(SHARED / "quora-pairs/dev/pairs.tsv", newline="") as f:
        for r in csv.DictReader(f, delimiter="\t", quoting=csv.QUOTE_NONE):
            if r["label"] == "1" and len(r["sentence1"]) < 80 and len(r["sentence2"]) < 80:
                rows.append((r["sentence1"], r["sentence2"]))
            if len(rows) == 4:
                break
    with open(DATA / "eval.tsv", "w") as f:
        f.write("anchor\tpositive\n")
        for a, p in rows:
            f.write(f"{a}\t{p}\n")
    # Binary classification: 4 positive and 4 negative dev pairs.
    dev, counts = [], {"0": 0, "1": 0}
    with open(SHARED / "quora-pairs/dev/pairs.tsv", newline="") as f:
        for r in csv.DictReader(f, delimiter="\t", quoting=csv.QUOTE_NONE):
            if counts[r["label"]] < 4 and len(r["sentence1"]) < 80 and len(r["sentence2"]) < 80:
                counts[r["label"]] += 1
                dev.append((r["sentence1"], r["sentence2"], int(r["label"])))
            if len(dev) == 8:
                break
    with open(DATA / "dev.tsv", "w") as f:
        f.write("sentence1\tsentence2\tlabel\n")
        for a, b, l in dev:
            f.write(f"{a}\t{b}\t{l}\n")
    # IR: the first 4 test queries of SciFact, their relevant documents and 12 others, texts cut short.
    qrels = {}
    with open(SHARED / "scifact/qrels/test.tsv") as f:
        next(f)
        for line in f:
            q, d, s = line.rstrip("\n").split("\t")
            if q not in qrels and len(qrels) == 4:
                continue
            qrels.setdefault(q, {})[d] = int(s)
    wanted = {d for ds in qrels.values() for d in ds}
    corpus, others = [], 0
    with open(SHARED / "scifact/corpus.jsonl") as f:
        for line in f:
            doc = json.loads(line)
            if doc["_id"] in wanted or others < 12:
                others += doc["_id"] not in wanted
                corpus.append({"_id": doc["_id"], "title": short(doc.get("title", ""), 80), "text": short(doc["text"], 160)})
    queries = []
    with open(SHARED / "scifact/queries.jsonl") as f:
        for line in f:
            q = json.loads(line)
            if q["_id"] in qrels:
                queries.append({"_id": q["_id"], "text": q["text"]})
    (DATA / "scifact/qrels").mkdir(parents=True, exist_ok=True)
    with open(DATA / "scifact/corpus.jsonl", "w") as f:
        for d in corpus:
            f.write(json.dumps(d) + "\n")
    with open(DATA / "scifact/queries.jsonl", "w") as f:
        for q in queries:
            f.write(json.dumps(q) + "\n")
    with open(DATA / "scifact/qrels/test.tsv", "w") as f:
        f.write("query-id\tcorpus-id\tscore\n")
        for q, ds in qrels.items():
            for d, s in ds.items():
                f.write(f"{q}\t{d}\t{s}\n")


def structure(card):
    """Headings (lines starting with '#', outside code blocks) and table header rows."""
    headings, tables, fence = [], [], False
    lines = card.splitlines()
    for i, line in enumerate(lines):
        if line.startswith("```"):
            fence = not fence
            continue
        if fence:
            continue
        if line.startswith("#"):
            headings.append(line.strip())
        if line.lstrip().startswith("|") and i + 1 < len(lines) and lines[i + 1].lstrip().startswith("|:"):
            # Cells trimmed: the column padding depends on the values.
            tables.append("| " + " | ".join(c.strip() for c in line.strip().strip("|").split("|")) + " |")
    return {"headings": headings, "table_headers": tables}


def write_manifest():
    """fixtures/train/card/data.json: each data file as TSV rows or JSONL records."""
    files = {}
    for path in sorted(DATA.rglob("*")):
        if path.is_file():
            lines = path.read_text(encoding="utf-8").split("\n")[:-1]
            rel = path.relative_to(DATA).as_posix()
            files[rel] = [json.loads(l) for l in lines] if rel.endswith(".jsonl") else [l.split("\t") for l in lines]
    (OUT / "data.json").write_text(json.dumps(to_refs(files), ensure_ascii=False, indent=1) + "\n", encoding="utf-8")


def main():
    write_data()
    write_manifest()
    import hashlib

    import datasets.fingerprint
    import torch
    from datasets import Dataset

    # dill cannot pickle pyarrow's MonthDayNano type here, which datasets' fingerprinting of
    # every transform needs; the fingerprints only name cache files, so a hash of repr does.
    datasets.fingerprint.Hasher.hash = classmethod(lambda cls, value: hashlib.md5(repr(value).encode()).hexdigest())
    from sentence_transformers import SparseEncoder, SparseEncoderTrainer, SparseEncoderTrainingArguments
    from sentence_transformers.sparse_encoder.evaluation import (
        SparseBinaryClassificationEvaluator,
        SparseInformationRetrievalEvaluator,
        SparseEmbeddingSimilarityEvaluator,
        SparseNanoBEIREvaluator,
        SparseRerankingEvaluator,
        SparseTripletEvaluator,
    )
    from sentence_transformers.sparse_encoder.losses import SparseMultipleNegativesRankingLoss, SpladeLoss

    torch.manual_seed(42)
    with open(DATA / "train.tsv") as f:
        rows = [l.rstrip("\n").split("\t") for l in f][1:]
    train = Dataset.from_dict({"anchor": [r[0] for r in rows], "positive": [r[1] for r in rows]})
    with open(DATA / "eval.tsv") as f:
        rows = [l.rstrip("\n").split("\t") for l in f][1:]
    eval_rows = Dataset.from_dict({"anchor": [r[0] for r in rows], "positive": [r[1] for r in rows]})
    with open(DATA / "dev.tsv") as f:
        dev = [l.rstrip("\n").split("\t") for l in f][1:]
    binary = SparseBinaryClassificationEvaluator(
        sentences1=[d[0] for d in dev], sentences2=[d[1] for d in dev], labels=[int(d[2]) for d in dev], name="eval"
    )
    corpus = {}
    for line in open(DATA / "scifact/corpus.jsonl"):
        d = json.loads(line)
        corpus[d["_id"]] = (d["title"] + " " + d["text"]).strip()
    queries = {json.loads(l)["_id"]: json.loads(l)["text"] for l in open(DATA / "scifact/queries.jsonl")}
    relevant = {}
    for line in list(open(DATA / "scifact/qrels/test.tsv"))[1:]:
        q, d, _ = line.rstrip("\n").split("\t")
        relevant.setdefault(q, set()).add(d)
    ir = SparseInformationRetrievalEvaluator(queries, corpus, relevant, name="scifact")
    # NanoBEIR on the two local subsets of fixtures/eval/nanobeir_evaluator (the Hub is
    # unreachable: the loader is given their rows, as generate_nanobeir_evaluator_fixture.py does).
    nano_data = resolve(json.loads(NANO.read_text()))["datasets"]

    def nano_rows(self, subset_name, split, required_columns):
        d = nano_data[split]
        if subset_name == "corpus":
            return [{"_id": x["_id"], "text": (x["title"] + " " + x["text"]) if x["title"] else x["text"]} for x in d["corpus"]]
        if subset_name == "queries":
            return d["queries"]
        return [{"query-id": q, "corpus-id": c} for q, c in d["qrels"]]

    SparseNanoBEIREvaluator._load_dataset_subset_split = nano_rows
    nano = SparseNanoBEIREvaluator(dataset_names=["scifact", "dbpedia"], write_csv=False)
    # Similarity, triplet and reranking evaluators on the first rows of the real-data evaluator
    # fixtures (STS-B dev, SciFact), as `splade train --eval-similarity/--eval-triplets/
    # --eval-reranking` takes them.
    stsb = resolve(json.loads((EVALUATORS / "similarity_stsb.json").read_text()))["pairs"][:SMALL]
    sts = SparseEmbeddingSimilarityEvaluator(
        [p[0] for p in stsb], [p[1] for p in stsb], [float(p[2]) for p in stsb], name="sts", write_csv=False
    )
    trip = resolve(json.loads((EVALUATORS / "triplet_scifact.json").read_text()))["triplets"][:SMALL]
    triplet = SparseTripletEvaluator(
        [t[0] for t in trip], [t[1] for t in trip], [t[2] for t in trip], name="triplet", write_csv=False
    )
    samples = resolve(json.loads((EVALUATORS / "reranking_scifact.json").read_text()))["samples"][:4]
    rerank = SparseRerankingEvaluator(samples, name="reranking", write_csv=False)

    model = SparseEncoder(str(MODEL), device="cpu")
    loss = SpladeLoss(
        model,
        SparseMultipleNegativesRankingLoss(model),
        query_regularizer_weight=5e-5,
        document_regularizer_weight=3e-5,
    )
    # The loss of the untrained model on the evaluation rows (eval mode, one batch of 4, full
    # regulariser weights): what `eval_loss` computes, free of the training's dropout masks.
    model.eval()
    with torch.no_grad():
        parts = loss([model.preprocess(eval_rows["anchor"]), model.preprocess(eval_rows["positive"])], None)
    (OUT / "eval_loss.json").write_text(json.dumps({"untrained_eval_loss": float(sum(parts.values()))}, indent=1) + "\n")
    with tempfile.TemporaryDirectory() as tmp:
        args = SparseEncoderTrainingArguments(
            output_dir=os.path.join(tmp, "run"),
            per_device_train_batch_size=4,
            num_train_epochs=1,
            learning_rate=2e-5,
            batch_sampler="no_duplicates",
            eval_strategy="steps",
            eval_steps=1,
            logging_steps=1,
            save_strategy="no",
            seed=42,
            report_to="none",
            use_cpu=True,
        )
        trainer = SparseEncoderTrainer(
            model=model, args=args, train_dataset=train, eval_dataset=eval_rows, loss=loss,
            evaluator=[binary, ir, nano, sts, triplet, rerank],
        )
        trainer.train()
        final = os.path.join(tmp, "final")
        model.save_pretrained(final)
        card = Path(final, "README.md").read_text()
    # No machine paths in the committed card.
    card = card.replace(str(MODEL), "bert-tied-v6")
    (OUT / "README.md").write_text(redact_markdown(card))
    (OUT / "structure.json").write_text(json.dumps(structure(card), indent=1) + "\n")


if __name__ == "__main__":
    main()
