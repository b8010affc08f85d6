#!/usr/bin/env python3
"""Reference metrics of sentence-transformers 6.2's SparseNanoBEIREvaluator on two small local
datasets cut from ../shared/data, for `crates/eval/tests/nanobeir_evaluator.rs`:

  NanoSciFact  <- scifact/ (the source of NanoSciFact), test qrels
  NanoDBPedia  <- mini-dbpedia-entity/ (a DBpedia-Entity v2 subset, the source of NanoDBPedia)

Each subset: the first QUERIES judged queries (qrels file order, relevant rows only: score > 0),
their relevant documents plus the first OTHERS other documents of corpus.jsonl (file order),
texts cut to TEXT_CHARS characters. The subsets are stored in the fixture (BEIR rows); the Rust
test writes them as BEIR folders and evaluates them with splade-rs.

The NanoBEIR data is on the Hugging Face Hub, which is unreachable here, so the evaluator's
`_load_dataset_subset_split` is given the same rows as lists of dicts (corpus text =
title + " " + text, as splade-rs's BEIR reader joins them; qrels one row per relevant pair),
and everything else (dataset names, per-dataset IR evaluators, the NanoBEIR_mean aggregation of
metrics, weighted query/corpus active dims, avg_flops from the summed counts) is the
reference's own code.

  /work/venv-ref/bin/python scripts/parity/generate_nanobeir_evaluator_fixture.py
"""

from __future__ import annotations

import json
from pathlib import Path
from shared_text import to_refs  # fixtures refer to ../shared/data texts, never copy them

REPO = Path(__file__).resolve().parents[2]
SHARED = REPO.parent / "shared" / "data"
OUT = REPO / "fixtures" / "eval" / "nanobeir_evaluator" / "reference.json"
SPLADE_TINY = Path.home() / ".cache" / "splade-rs" / "models" / "splade-tiny"
QUERIES, OTHERS, TEXT_CHARS = 12, 60, 300
SOURCES = [("NanoSciFact", "scifact", "scifact"), ("NanoDBPedia", "dbpedia", "mini-dbpedia-entity")]


def subset(folder: Path) -> dict:
    qrels: dict[str, list[str]] = {}
    with open(folder / "qrels" / "test.tsv") as f:
        next(f)
        for line in f:
            q, d, s = line.rstrip("\n").split("\t")
            if int(float(s)) <= 0:
                continue
            if q not in qrels and len(qrels) == QUERIES:
                continue
            qrels.setdefault(q, []).append(d)
    relevant = {d for ds in qrels.values() for d in ds}
    corpus, others = [], 0
    for line in open(folder / "corpus.jsonl"):
        doc = json.loads(line)
        if doc["_id"] in relevant or others < OTHERS:
            others += doc["_id"] not in relevant
            corpus.append({"_id": doc["_id"], "title": doc.get("title", "")[:TEXT_CHARS], "text": doc["text"][:TEXT_CHARS]})
    queries = []
    for line in open(folder / "queries.jsonl"):
        q = json.loads(line)
        if q["_id"] in qrels:
            queries.append({"_id": q["_id"], "text": q["text"]})
    return {"corpus": corpus, "queries": queries, "qrels": [[q, d] for q, ds in qrels.items() for d in ds]}


def main() -> None:
    import torch
    from sentence_transformers import SparseEncoder
    from sentence_transformers.sparse_encoder.evaluation import SparseNanoBEIREvaluator

    data = {name: subset(SHARED / folder) for name, _, folder in SOURCES}

    def load(self, subset_name, split, required_columns):
        d = data[split]
        if subset_name == "corpus":
            rows = [{"_id": x["_id"], "text": (x["title"] + " " + x["text"]) if x["title"] else x["text"]} for x in d["corpus"]]
        elif subset_name == "queries":
            rows = d["queries"]
        else:
            rows = [{"query-id": q, "corpus-id": c} for q, c in d["qrels"]]
        return rows

    SparseNanoBEIREvaluator._load_dataset_subset_split = load
    torch.manual_seed(0)
    model = SparseEncoder(str(SPLADE_TINY), device="cpu")
    ev = SparseNanoBEIREvaluator(dataset_names=[key for _, key, _ in SOURCES], batch_size=16, write_csv=False)
    metrics = ev(model)
    out = {
        "datasets": {name: data[name] for name, _, _ in SOURCES},
        "dataset_names": [key for _, key, _ in SOURCES],
        "primary_metric": ev.primary_metric,
        "metrics": [[k, float(v)] for k, v in metrics.items()],  # a list: the order is checked
    }
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps(to_refs(out), ensure_ascii=False) + "\n", encoding="utf-8")
    print(f"wrote {OUT}: {len(out['metrics'])} metrics, primary {ev.primary_metric}")


if __name__ == "__main__":
    main()
