"""How many groups of blocks (superblocks) a superblock search would still have to open.

For an index's own block order (its `docs.order`), exact block maxima and each query's final
k-th score (brute force), counts per group size S the groups whose bound (sum over the query
terms of q times the group's maximum weight) reaches that score: a search bounding groups
before blocks would have to open at least those. Prints one line per S. Needs numpy and scipy
(the /work/venv-search of BENCHMARKS.md).

    python scripts/bench/superblock_sim.py DOCS.vec.jsonl QUERIES.vec.jsonl INDEX_DIR \
        [--block-size 32] [--queries 300] [--k 10] [--sizes 1,4,8,16]
"""

import argparse
import json

import numpy as np
import scipy.sparse as sp


def read_vectors(path, dim=None, limit=None):
    indices, values, indptr = [], [], [0]
    for n, line in enumerate(open(path)):
        if limit is not None and n >= limit:
            break
        d = json.loads(line)
        indices.extend(d["indices"])
        values.extend(d["values"])
        indptr.append(len(indices))
    dim = dim or (max(indices) + 1)
    return sp.csr_matrix(
        (np.array(values, np.float32), np.array(indices, np.int64), np.array(indptr)),
        shape=(len(indptr) - 1, dim),
    )


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("docs")
    ap.add_argument("queries")
    ap.add_argument("index_dir", help="a splade-rs index directory (for docs.order)")
    ap.add_argument("--block-size", type=int, default=32)
    ap.add_argument("--queries", dest="nq", type=int, default=300)
    ap.add_argument("--k", type=int, default=10)
    ap.add_argument("--sizes", default="1,4,8,16")
    a = ap.parse_args()
    docs = read_vectors(a.docs)
    queries = read_vectors(a.queries, limit=a.nq)
    dim = max(docs.shape[1], queries.shape[1])
    docs.resize((docs.shape[0], dim))
    queries.resize((queries.shape[0], dim))
    order = np.fromfile(f"{a.index_dir}/docs.order", dtype="<u4")
    if len(order) != docs.shape[0]:
        raise SystemExit(f"{a.index_dir}/docs.order has {len(order)} entries, {a.docs} {docs.shape[0]} documents")
    placed = docs[order].tocoo()  # row p: the document at block position p
    q = queries.toarray().T  # dim x nq
    scores = docs @ q
    theta = np.sort(scores, axis=0)[-a.k, :]
    for size in map(int, a.sizes.split(",")):
        group = placed.row // (a.block_size * size)
        key = group.astype(np.int64) * dim + placed.col
        o = np.argsort(key, kind="stable")
        key, data = key[o], placed.data[o]
        uniq, start = np.unique(key, return_index=True)
        maxima = sp.csr_matrix(
            (np.maximum.reduceat(data, start), (uniq // dim, uniq % dim)),
            shape=(int(group.max()) + 1, dim),
        )
        passing = ((maxima @ q) >= theta[None, :]).sum(axis=0)
        print(
            f"S={size:3d} groups {maxima.shape[0]:7d} list entries {maxima.nnz:10d} "
            f"passing mean {passing.mean():.0f} median {np.median(passing):.0f} "
            f"({passing.mean() / maxima.shape[0]:.1%}), blocks in them {passing.mean() * size:.0f}",
            flush=True,
        )


if __name__ == "__main__":
    main()
