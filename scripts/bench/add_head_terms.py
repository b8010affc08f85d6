#!/usr/bin/env python3
"""Queries with stopword-like expansion terms of low weight added, as SPLADE queries often hold:
each query gets the collection's N most widespread terms (those in the most documents), each at
half the query's lightest weight (a term it already has keeps its weight; an empty query stays
empty). They add postings a
document (sum of df / n) but little to any block's bound, which is what the index's traversal
rule must not mistake for a flat query (`SAMPLE_LIGHT_SHARE` in crates/index/src/search/taat.rs,
BENCHMARKS.md "Session 38").

  python3 scripts/bench/add_head_terms.py DOCS QUERIES.jsonl OUT.jsonl N

DOCS is the documents' vectors (Seismic's .bin, or {"id", "indices", "values"} JSONL as
make_synthetic.py writes), QUERIES.jsonl the queries in that JSONL form. Prints the terms added
with their share of the documents, and the new queries' postings a document (p10 / p50 / p90,
and how many reach 3). Needs numpy.
"""

import json
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from compare_indexes import load_vectors  # noqa: E402


def main() -> int:
    if len(sys.argv) != 5:
        print(__doc__, file=sys.stderr)
        return 2
    docs, queries, out, n_head = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
    _, indptr, indices, _ = load_vectors(docs)
    n = len(indptr) - 1
    df = np.bincount(indices.astype(np.int64))
    head = [int(t) for t in np.argsort(-df, kind="stable")[:n_head]]
    print(f"added terms {head}, in {(df[head] / n).round(3).tolist()} of the documents")
    per_doc = []
    with open(queries) as f, open(out, "w") as g:
        for line in f:
            q = json.loads(line)
            weights = dict(zip(q["indices"], q["values"]))
            if weights:
                # Half the lightest weight's magnitude (SPLADE's weights are positive).
                light = min(abs(v) for v in q["values"]) * 0.5
                for t in head:
                    weights.setdefault(t, light)
            terms = sorted(weights)
            q["indices"], q["values"] = terms, [weights[t] for t in terms]
            per_doc.append(sum(int(df[t]) for t in terms if t < len(df)) / n)
            g.write(json.dumps(q) + "\n")
    p = np.percentile(per_doc, [10, 50, 90]).round(2).tolist()
    print(f"postings a document p10 / p50 / p90 {p}, at least 3: {sum(x >= 3 for x in per_doc)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
