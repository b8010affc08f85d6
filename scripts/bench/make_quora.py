#!/usr/bin/env python3
"""Quora duplicate-question retrieval collection for the index benchmarks (issue #17).

Reads the Quora Question Pairs release file of ../shared/data/quora-pairs (537,627 distinct
questions) and writes, in OUT_DIR:
  corpus.jsonl   {"_id", "text"}: every distinct non-empty question but the held-out ones
                 (536,627), in qid order
  queries.jsonl  {"_id", "text"}: 1,000 questions drawn with a fixed seed, held out of the corpus
                 (a new question looking for its duplicates)

Then encode both with splade-tiny (about 4 minutes on 2 cores):
  splade encode --document --id-field _id --jsonl-field text --input OUT/corpus.jsonl --output OUT/corpus.vec.jsonl
  splade encode --query --id-field _id --jsonl-field text --input OUT/queries.jsonl --output OUT/queries.vec.jsonl

The data's licence (Quora terms, non-commercial) forbids copying it into the repository: the
collection is made from ../shared/data on each machine.

  python3 scripts/bench/make_quora.py [--data ../shared/data] [--out /work/quora]
"""

import argparse
import csv
import gzip
import json
import os
import random
import sys


def main() -> int:
    here = os.path.dirname(os.path.abspath(__file__))
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", default=os.path.join(here, "..", "..", "..", "shared", "data"))
    ap.add_argument("--out", default="/work/quora")
    ap.add_argument("--queries", type=int, default=1000)
    ap.add_argument("--seed", type=int, default=5)
    args = ap.parse_args()
    raw = os.path.join(args.data, "quora-pairs", "raw", "quora_duplicate_questions.tsv.gz")
    csv.field_size_limit(1 << 30)
    questions = {}
    with gzip.open(raw, "rt", newline="") as f:
        rows = csv.reader(f, delimiter="\t")
        header = next(rows)
        if header[:6] != ["id", "qid1", "qid2", "question1", "question2", "is_duplicate"]:
            print(f"{raw}: unexpected header {header}", file=sys.stderr)
            return 1
        for line, row in enumerate(rows, start=2):
            if len(row) != 6:
                print(f"{raw}: line {line}: {len(row)} fields, skipped", file=sys.stderr)
                continue
            _, q1, q2, t1, t2, _ = row
            for qid, text in ((q1, t1), (q2, t2)):
                if text.strip() and qid not in questions:
                    questions[qid] = text
    ids = sorted(questions, key=int)
    held = set(random.Random(args.seed).sample(ids, args.queries))
    os.makedirs(args.out, exist_ok=True)
    with open(os.path.join(args.out, "corpus.jsonl"), "w") as f:
        for qid in ids:
            if qid not in held:
                f.write(json.dumps({"_id": qid, "text": questions[qid]}) + "\n")
    with open(os.path.join(args.out, "queries.jsonl"), "w") as f:
        for qid in sorted(held, key=int):
            f.write(json.dumps({"_id": qid, "text": questions[qid]}) + "\n")
    print(f"{len(ids) - len(held)} documents, {len(held)} queries in {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
