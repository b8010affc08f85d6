#!/usr/bin/env python3
"""Seeded SPLADE-like synthetic sparse vectors for index benchmarks.

Zipfian term popularity over 30,522 dimensions (BERT vocabulary size); documents of about
120 terms and queries of about 40, with positive, heavy-tailed weights. Documents are drawn
from latent topics (each topic prefers a few hundred terms, Zipf-weighted), so similar
documents exist and queries are correlated with documents: every query is drawn from the
topic mixture of a random document and shares many of its terms (as real SPLADE queries
share expansion terms with their relevant passages).

Writes, into OUT/:
  docs.jsonl, queries.jsonl   {"id", "indices", "values"} lines (splade index build --vectors,
                              splade search --query-vectors)
  docs.bin, docs.ids          the Seismic / kANNolo binary layout (u32 count; per vector
  queries.bin, queries.ids    u32 nnz, nnz u32 ids, nnz f32 values) and one id per line

  python3 scripts/bench/make_synthetic.py --docs 100000 --queries 1000 --seed 7 --out /tmp/syn

`--profile flat` draws a collection that is harder for pruning (issue #17): document lengths
log-normal clipped to 20-400 (mean about 120), queries of about 40 terms; Zipfian popularity
with stopword-like head terms present in almost every document; 1,000 latent topics; flat
weights (a document's heaviest 10 % of terms hold about a quarter of its L1 mass); documents
in random topic order. It prints a summary that checks those properties.

  python3 scripts/bench/make_synthetic.py --profile flat --docs 1000000 --queries 1000 --seed 11 --out /tmp/flat1m
"""

import argparse
import json
import os

import numpy as np

DIM = 30522


def zipf_probs(n, s, offset):
    p = 1.0 / (np.arange(n) + offset) ** s
    return p / p.sum()


def make_vectors(rng, count, mean_terms, topic_terms, topic_mix, global_p, prefix, source_topics):
    """Each vector: a Poisson-ish number of terms, a share from its topics, the rest from the
    global Zipf distribution; weights log-normal, boosted for topic terms."""
    out = []
    global_cdf = np.cumsum(global_p)
    for i in range(count):
        n = max(5, int(rng.normal(mean_terms, mean_terms * 0.25)))
        topics = source_topics(i)
        n_topic = int(n * topic_mix)
        picks = []
        for j, t in enumerate(topics):
            share = n_topic // len(topics) + (1 if j < n_topic % len(topics) else 0)
            terms, cdf = topic_terms[t]
            picks.append(terms[np.minimum(np.searchsorted(cdf, rng.random(share)), terms.size - 1)])
        picks.append(np.minimum(np.searchsorted(global_cdf, rng.random(n - n_topic)), DIM - 1))
        idx = np.concatenate(picks)
        w = rng.lognormal(mean=-0.6, sigma=0.7, size=idx.size).astype(np.float32)
        w[:n_topic] *= 1.8  # topic terms weigh more (as a passage's salient terms do)
        order = np.argsort(idx, kind="stable")
        idx, w = idx[order], w[order]
        # Duplicate terms: keep the maximum weight (SPLADE max-pools).
        uniq, start = np.unique(idx, return_index=True)
        wmax = np.maximum.reduceat(w, start)
        out.append((f"{prefix}{i}", uniq.astype(np.uint32), np.round(wmax, 4).astype(np.float32)))
    return out


# Flat profile: stopword-like head terms and their per-document presence probability.
FLAT_HEAD_TERMS = 24
FLAT_TOPICS = 1000
FLAT_TOPIC_SIZE = 400
# Weights exp(N(0, sigma)): sigma 0.57 puts about 25 % of a document's L1 mass in its
# heaviest 10 % of terms (checked by the printed summary).
FLAT_SIGMA = 0.57


def make_flat(rng, count, lengths, head, head_presence, topic_terms, topic_mix, global_cdf, prefix, source_topics):
    """Flat-profile vectors: head terms present with probability `head_presence`, then a share
    from the vector's topics and the rest from the global Zipf distribution; log-normal weights
    with small spread (head terms a little lighter, as stopword expansions are)."""
    out = []
    for i in range(count):
        n = int(lengths[i])
        h = head[rng.random(head.size) < head_presence]
        rest = max(1, n - h.size)
        n_topic = int(rest * topic_mix)
        topics = source_topics(i)
        picks = [h]
        for j, t in enumerate(topics):
            share = n_topic // len(topics) + (1 if j < n_topic % len(topics) else 0)
            terms, cdf = topic_terms[t]
            picks.append(terms[np.minimum(np.searchsorted(cdf, rng.random(share)), terms.size - 1)])
        picks.append(np.minimum(np.searchsorted(global_cdf, rng.random(rest - n_topic)), DIM - 1))
        idx = np.concatenate(picks)
        w = rng.lognormal(mean=-0.5, sigma=FLAT_SIGMA, size=idx.size).astype(np.float32)
        w[: h.size] *= 0.8
        order = np.argsort(idx, kind="stable")
        idx, w = idx[order], w[order]
        uniq, start = np.unique(idx, return_index=True)
        wmax = np.maximum.reduceat(w, start)
        out.append((f"{prefix}{i}", uniq.astype(np.uint32), np.maximum(np.round(wmax, 4), 1e-4).astype(np.float32)))
    return out


def flat_profile(rng, a):
    perm = rng.permutation(DIM)
    global_p = np.empty(DIM)
    global_p[perm] = zipf_probs(DIM, 1.0, 10.0)
    head = np.sort(perm[:FLAT_HEAD_TERMS]).astype(np.uint32)  # the most popular terms
    global_cdf = np.cumsum(global_p)
    inner = np.cumsum(zipf_probs(FLAT_TOPIC_SIZE, 0.6, 5.0))
    topic_terms = []
    tp = global_p ** 0.5 / (global_p ** 0.5).sum()
    for _ in range(FLAT_TOPICS):
        topic_terms.append((rng.choice(DIM, size=FLAT_TOPIC_SIZE, replace=False, p=tp), inner))
    # Random topic order: every document draws its two topics independently.
    doc_topics = rng.integers(0, FLAT_TOPICS, size=(a.docs, 2))
    doc_len = np.clip(np.round(rng.lognormal(np.log(a.doc_terms) - 0.05, 0.6, size=a.docs)), 20, 400)
    docs = make_flat(rng, a.docs, doc_len, head, 0.97, topic_terms, 0.6, global_cdf, "d", lambda i: doc_topics[i])
    src = rng.integers(0, a.docs, size=a.queries)
    q_len = np.clip(np.round(rng.normal(a.query_terms, a.query_terms * 0.2, size=a.queries)), 5, 200)
    queries = make_flat(rng, a.queries, q_len, head, 0.5, topic_terms, 0.7, global_cdf, "q", lambda i: doc_topics[src[i]])
    return docs, queries, head


def summary(docs, queries, head):
    """The properties the flat profile promises, measured."""
    lens = np.array([v[1].size for v in docs])
    top10 = []
    for _, _, w in docs[: min(len(docs), 20000)]:
        s = np.sort(w)[::-1]
        top10.append(s[: max(1, int(np.ceil(0.1 * s.size)))].sum() / s.sum())
    present = np.zeros(DIM, np.int64)
    for _, idx, _ in docs[: min(len(docs), 20000)]:
        present[idx] += 1
    sample = min(len(docs), 20000)
    return {
        "doc_len_mean": float(lens.mean()), "doc_len_min": int(lens.min()), "doc_len_max": int(lens.max()),
        "doc_len_p5_p50_p95": [float(x) for x in np.percentile(lens, [5, 50, 95])],
        "query_len_mean": float(np.mean([v[1].size for v in queries])),
        "top10pct_l1_share_mean": float(np.mean(top10)),
        "head_terms": int(head.size),
        "head_presence_min": float(present[head].min() / sample),
        "terms_in_half_the_docs": int((present > sample / 2).sum()),
    }


def write(out_dir, name, vectors):
    with open(os.path.join(out_dir, f"{name}.jsonl"), "w") as f:
        for vid, idx, w in vectors:
            f.write(json.dumps({"id": vid, "indices": idx.tolist(), "values": [float(x) for x in w]}))
            f.write("\n")
    with open(os.path.join(out_dir, f"{name}.bin"), "wb") as f:
        f.write(np.uint32(len(vectors)).tobytes())
        for _, idx, w in vectors:
            f.write(np.uint32(idx.size).tobytes())
            f.write(idx.astype("<u4").tobytes())
            f.write(w.astype("<f4").tobytes())
    with open(os.path.join(out_dir, f"{name}.ids"), "w") as f:
        for vid, _, _ in vectors:
            f.write(vid + "\n")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--docs", type=int, default=100_000)
    ap.add_argument("--queries", type=int, default=1000)
    ap.add_argument("--doc-terms", type=float, default=120)
    ap.add_argument("--query-terms", type=float, default=40)
    ap.add_argument("--topics", type=int, default=2000)
    ap.add_argument("--topic-size", type=int, default=300)
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--profile", choices=["topical", "flat"], default="topical",
                    help="topical: the default collection; flat: harder for pruning (see above)")
    ap.add_argument("--out", required=True)
    a = ap.parse_args()
    os.makedirs(a.out, exist_ok=True)
    rng = np.random.default_rng(a.seed)
    if a.profile == "flat":
        docs, queries, head = flat_profile(rng, a)
        write(a.out, "docs", docs)
        write(a.out, "queries", queries)
        print(json.dumps({"profile": "flat", "docs": len(docs), "queries": len(queries), "seed": a.seed,
                          **summary(docs, queries, head)}))
        return
    # Global popularity: Zipf over a random permutation of the vocabulary.
    perm = rng.permutation(DIM)
    global_p = np.empty(DIM)
    global_p[perm] = zipf_probs(DIM, 1.0, 10.0)
    # Topics: each a set of terms drawn by popularity, with Zipf weights inside the topic.
    topic_terms = []
    inner = np.cumsum(zipf_probs(a.topic_size, 0.8, 3.0))
    for _ in range(a.topics):
        terms = rng.choice(DIM, size=a.topic_size, replace=False, p=global_p ** 0.5 / (global_p ** 0.5).sum())
        topic_terms.append((terms, inner))
    doc_topics = rng.integers(0, a.topics, size=(a.docs, 2))
    topic_pop = zipf_probs(a.topics, 0.7, 5.0)
    doc_topics[:, 0] = rng.choice(a.topics, size=a.docs, p=topic_pop)
    docs = make_vectors(rng, a.docs, a.doc_terms, topic_terms, 0.7, global_p, "d", lambda i: doc_topics[i])
    # Queries: the topics of a random document, fewer terms, more topical.
    src = rng.integers(0, a.docs, size=a.queries)
    queries = make_vectors(
        rng, a.queries, a.query_terms, topic_terms, 0.8, global_p, "q", lambda i: doc_topics[src[i]]
    )
    write(a.out, "docs", docs)
    write(a.out, "queries", queries)
    nnz = sum(v[1].size for v in docs)
    print(json.dumps({"docs": len(docs), "queries": len(queries), "doc_nnz_mean": nnz / len(docs),
                      "query_nnz_mean": sum(v[1].size for v in queries) / len(queries), "seed": a.seed}))


if __name__ == "__main__":
    main()
