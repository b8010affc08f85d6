#!/usr/bin/env python3
"""Write the small training-data parquet fixtures of `fixtures/train/parquet/` for `crates/train`
tests, as a Hugging Face dataset split stores them (snappy-compressed string columns, the split
in `data/train-0000N-of-0000M.parquet` files), with the same rows as JSONL for comparison.

  python3 -m venv /tmp/venv-pq && /tmp/venv-pq/bin/pip install pyarrow
  /tmp/venv-pq/bin/python scripts/parity/generate_train_parquet_fixtures.py

Files:
  triplets/data/train-00000-of-00002.parquet, train-00001-of-00002.parquet
      columns anchor, positive, negative (the sentence-transformers/quora-duplicates `triplet`
      layout), rows split across two files; plus `extra` (an int column that is ignored)
  triplets.jsonl                 the same rows, in order
  pairs-renamed.parquet          columns question, duplicate (needs a column mapping)
  null-negative.parquet          a null in `negative` on row 2 (an error naming row and column)
"""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

OUT = Path(__file__).resolve().parents[2] / "fixtures" / "train" / "parquet"

ROWS = [
    ("How do I learn Python quickly?", "What is the fastest way to learn Python?", "How do I learn Java?"),
    ("Why is the sky blue?", "What makes the sky look blue?", "Why is the sea salty?"),
    ("Which laptop is best for students?", "What is a good laptop for a student?", "Which phone is best?"),
    ("How can I lose weight fast?", "What is the quickest way to lose weight?", "How can I gain muscle?"),
    ("What is “machine learning”, in short?", "Explain machine learning briefly.", "What is a database?"),
]


def main() -> None:
    (OUT / "triplets" / "data").mkdir(parents=True, exist_ok=True)
    cols = list(zip(*ROWS))
    for part, (lo, hi) in enumerate([(0, 3), (3, 5)]):
        table = pa.table({
            "anchor": pa.array(cols[0][lo:hi], pa.string()),
            "positive": pa.array(cols[1][lo:hi], pa.string()),
            "negative": pa.array(cols[2][lo:hi], pa.string()),
            "extra": pa.array(list(range(lo, hi)), pa.int64()),
        })
        pq.write_table(table, OUT / "triplets" / "data" / f"train-{part:05d}-of-00002.parquet", compression="snappy")
    with open(OUT / "triplets.jsonl", "w", encoding="utf-8") as f:
        for a, p, n in ROWS:
            f.write(json.dumps({"anchor": a, "positive": p, "negative": n}, ensure_ascii=False) + "\n")
    pq.write_table(pa.table({"question": pa.array(cols[0], pa.string()), "duplicate": pa.array(cols[1], pa.string())}),
                   OUT / "pairs-renamed.parquet", compression="snappy")
    negs = list(cols[2])
    negs[1] = None
    pq.write_table(pa.table({"anchor": pa.array(cols[0], pa.string()), "positive": pa.array(cols[1], pa.string()),
                             "negative": pa.array(negs, pa.string())}), OUT / "null-negative.parquet",
                   compression="snappy")
    print(f"wrote {OUT}")


if __name__ == "__main__":
    main()
