#!/usr/bin/env python3
"""Per query, its postings a document: the query terms' document frequencies summed, over the
collection's documents (sum of df / n). Scale-free, so a sample of a collection estimates it
for the whole; the index's traversal rule gates its sampled probe on it (`SwitchRule` in
crates/index/src/search/taat.rs, BENCHMARKS.md "Session 35").

Reads {"id", "indices", "values"} JSONL (`splade encode --id-field`, make_synthetic.py):

  python3 scripts/bench/postings_per_doc.py DOCS.jsonl QUERIES.jsonl [QUERIES.jsonl ...]

prints the documents' mean length and, per query file, the p10 / p50 / p90 / largest value
and how many queries reach 3 and 4. Needs numpy.
"""

import json
import sys

import numpy as np


def main() -> int:
    if len(sys.argv) < 3:
        print(__doc__, file=sys.stderr)
        return 2
    df = None
    n, lengths = 0, []
    with open(sys.argv[1]) as f:
        for line in f:
            indices = json.loads(line)["indices"]
            if indices and (df is None or max(indices) >= len(df)):
                grown = np.zeros(max(30522, max(indices) + 1))
                if df is not None:
                    grown[: len(df)] = df
                df = grown
            if indices:
                df[indices] += 1
            n += 1
            lengths.append(len(indices))
    if n == 0 or df is None:
        print(f"{sys.argv[1]}: no documents with terms", file=sys.stderr)
        return 1
    print(f"{sys.argv[1]}: {n} documents, {np.mean(lengths):.1f} terms a document")
    for path in sys.argv[2:]:
        sums = []
        with open(path) as f:
            for line in f:
                indices = [t for t in json.loads(line)["indices"] if t < len(df)]
                sums.append(df[indices].sum() / n)
        s = np.array(sums)
        p10, p50, p90 = np.percentile(s, [10, 50, 90])
        print(
            f"{path}: {len(s)} queries, postings a document p10 {p10:.2f} p50 {p50:.2f} "
            f"p90 {p90:.2f} max {s.max():.2f}; at least 3: {(s >= 3).sum()}, at least 4: {(s >= 4).sum()}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
