#!/usr/bin/env python3
"""Write the small NanoBEIR parquet fixtures of `fixtures/eval/nanobeir/` (both Hugging Face
layouts, snappy-compressed as `datasets.push_to_hub` writes them) and the same data as BEIR
jsonl folders, for `crates/eval` and `crates/cli` tests.

  python3 -m venv /tmp/venv-pq && /tmp/venv-pq/bin/pip install pyarrow
  /tmp/venv-pq/bin/python scripts/parity/generate_nanobeir_parquet_fixtures.py

Layouts:
  zeta-alpha/NanoTiny/{corpus,queries,qrels}/train-00000-of-00001.parquet
      (one dataset per repository, split `train`, like zeta-alpha-ai/NanoMSMARCO)
  NanoBEIR-en/{corpus,queries,qrels}/{NanoTiny,NanoSmall}-00000-of-00001.parquet
      (one repository, one split per dataset, like sentence-transformers/NanoBEIR-en)
  beir/{NanoTiny,NanoSmall}/{corpus.jsonl,queries.jsonl,qrels/test.tsv}
      (what sentence-transformers' NanoBEIREvaluator keeps of the same data: empty texts
      dropped, no title joined, every qrels row relevant)
  bad-column/{corpus,queries,qrels}/train-00000-of-00001.parquet  (corpus has `body`, no `text`)
  zstd/...: corpus compressed with zstd (not read: Snappy and uncompressed only)

The parquet data contains what the reader must handle: a document and a query with an empty
text (dropped by sentence-transformers), a `title` column that is ignored, and a qrels row for a
document that is not in the corpus (it still counts as relevant, so recall cannot reach 1).
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

OUT = Path(__file__).resolve().parents[2] / "fixtures" / "eval" / "nanobeir"

TINY = {
    "corpus": [
        ("d1", "Header", "The cat sat on the mat."),
        ("d2", "", "Dogs are loyal animals that love to play fetch."),
        ("d3", "", ""),  # empty text: dropped
        ("d4", "Space", "The moon orbits the earth once a month."),
        ("d5", "", "Cats and dogs can live together peacefully."),
        ("d6", "", "Rockets carry astronauts to the international space station."),
    ],
    "queries": [
        ("q1", "where did the cat sit"),
        ("q2", "loyal pets"),
        ("q3", ""),  # empty text: dropped
        ("q4", "space travel"),
    ],
    "qrels": [
        ("q1", "d1"),
        ("q2", "d2"),
        ("q2", "d5"),
        ("q4", "d6"),
        ("q4", "d404"),  # unknown document
        ("q3", "d4"),  # query without text
    ],
}

SMALL = {
    "corpus": [
        ("s1", "", "Photosynthesis turns sunlight into chemical energy in plants."),
        ("s2", "", "The stock market fell sharply on Monday."),
        ("s3", "", "Green leaves contain chlorophyll."),
    ],
    "queries": [("t1", "how do plants make energy"), ("t2", "market crash")],
    "qrels": [("t1", "s1"), ("t1", "s3"), ("t2", "s2")],
}


def write(path: Path, columns: dict[str, list], compression: str = "snappy") -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.table(columns), path, compression=compression)


def write_parquet(root: Path, split: str, data: dict, text_column: str = "text", corpus_codec: str = "snappy") -> None:
    name = f"{split}-00000-of-00001.parquet"
    c = data["corpus"]
    write(root / "corpus" / name, {"_id": [x[0] for x in c], "title": [x[1] for x in c], text_column: [x[2] for x in c]},
          corpus_codec)
    q = data["queries"]
    write(root / "queries" / name, {"_id": [x[0] for x in q], "text": [x[1] for x in q]})
    r = data["qrels"]
    write(root / "qrels" / name, {"query-id": [x[0] for x in r], "corpus-id": [x[1] for x in r]})


def write_beir(root: Path, data: dict) -> None:
    (root / "qrels").mkdir(parents=True, exist_ok=True)
    with open(root / "corpus.jsonl", "w", encoding="utf-8") as f:
        for i, _title, text in data["corpus"]:
            if text:
                f.write(json.dumps({"_id": i, "text": text}) + "\n")
    with open(root / "queries.jsonl", "w", encoding="utf-8") as f:
        for i, text in data["queries"]:
            if text:
                f.write(json.dumps({"_id": i, "text": text}) + "\n")
    with open(root / "qrels" / "test.tsv", "w", encoding="utf-8") as f:
        f.write("query-id\tcorpus-id\tscore\n")
        for q, d in data["qrels"]:
            f.write(f"{q}\t{d}\t1\n")


def main() -> None:
    if OUT.exists():
        shutil.rmtree(OUT)
    write_parquet(OUT / "zeta-alpha" / "NanoTiny", "train", TINY)
    write_parquet(OUT / "NanoBEIR-en", "NanoTiny", TINY)
    write_parquet(OUT / "NanoBEIR-en", "NanoSmall", SMALL)
    write_beir(OUT / "beir" / "NanoTiny", TINY)
    write_beir(OUT / "beir" / "NanoSmall", SMALL)
    write_parquet(OUT / "bad-column", "train", SMALL, text_column="body")
    write_parquet(OUT / "zstd", "train", SMALL, corpus_codec="zstd")
    for p in sorted(OUT.rglob("*.parquet")):
        meta = pq.ParquetFile(p).metadata
        codec = meta.row_group(0).column(0).compression
        print(f"{p.relative_to(OUT)}: {meta.num_rows} rows, {codec}")


if __name__ == "__main__":
    main()
