#!/usr/bin/env python3
"""Web-query similarity collection for the index benchmarks (issue #17): the shortest texts
of the benchmarks (27 characters on average, about half a Quora question).

Reads ../shared/data/web-queries/all_web_queries_dedup.tsv.gz (193,135 distinct real web
queries: MS MARCO passage and document train queries, TREC Million Query and Terabyte
efficiency topics) and writes, in OUT_DIR:
  corpus.jsonl   {"_id", "text"}: every query but the held-out ones (192,135), in file order
  queries.jsonl  {"_id", "text"}: 1,000 queries drawn with a fixed seed, held out of the corpus
                 (a new query looking for the past queries like it: query suggestion)

Then encode both with splade-tiny (about 2 minutes on 2 cores):
  splade encode --document --id-field _id --jsonl-field text --input OUT/corpus.jsonl --output OUT/corpus.vec.jsonl
  splade encode --query --id-field _id --jsonl-field text --input OUT/queries.jsonl --output OUT/queries.vec.jsonl

The data's licences (MS MARCO: non-commercial research; TREC topics: research) forbid copying
it into the repository: the collection is made from ../shared/data on each machine.

  python3 scripts/bench/make_webq.py [--data ../shared/data] [--out /work/webq]
"""

import argparse
import gzip
import json
import os
import random
import sys


def main() -> int:
    here = os.path.dirname(os.path.abspath(__file__))
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", default=os.path.join(here, "..", "..", "..", "shared", "data"))
    ap.add_argument("--out", default="/work/webq")
    ap.add_argument("--queries", type=int, default=1000)
    ap.add_argument("--seed", type=int, default=5)
    args = ap.parse_args()
    raw = os.path.join(args.data, "web-queries", "all_web_queries_dedup.tsv.gz")
    rows = []
    seen = set()
    with gzip.open(raw, "rt", encoding="utf-8") as f:
        for line, text in enumerate(f, start=1):
            fields = text.rstrip("\n").split("\t")
            if len(fields) != 2:
                print(f"{raw}: line {line}: {len(fields)} fields, skipped", file=sys.stderr)
                continue
            qid, query = fields
            if not query.strip() or qid in seen:
                print(f"{raw}: line {line}: empty or repeated id {qid!r}, skipped", file=sys.stderr)
                continue
            seen.add(qid)
            rows.append((qid, query))
    held = set(random.Random(args.seed).sample(range(len(rows)), args.queries))
    os.makedirs(args.out, exist_ok=True)
    with open(os.path.join(args.out, "corpus.jsonl"), "w") as f:
        for i, (qid, query) in enumerate(rows):
            if i not in held:
                f.write(json.dumps({"_id": qid, "text": query}) + "\n")
    with open(os.path.join(args.out, "queries.jsonl"), "w") as f:
        for i in sorted(held):
            qid, query = rows[i]
            f.write(json.dumps({"_id": qid, "text": query}) + "\n")
    print(f"{len(rows) - len(held)} documents, {len(held)} queries in {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
