#!/usr/bin/env python3
"""splade-rs vs peer sparse indexes, in one run, on the same vectors.

Reads documents and queries as {"id", "indices", "values"} JSONL (make_synthetic.py, or
`splade encode --id-field`), computes the exact top-k with a scipy CSR scan (the reference
for recall), then runs each system in its own subprocess (so peak RSS is per system):

  scipy      exact: one CSR mat-vec per query (1 thread)
  splade-rs  crates/index/examples/bench_index (exact + alpha/beta grid; 1 and 2 threads)
  bmp        bmp 0.2.8 (Mallia et al.): exact (alpha = beta = 1) and approximate; document
             weights quantised to u8 (largest weight -> 255), so "exact" is exact for the
             quantised weights
  seismic    pyseismic-lsr 0.5.4: approximate (query_cut, heap_factor grid)
  kannolo    kannolo 0.15.1 SparsePlainHNSW (graph; ef_search grid)

Per system and setting: QPS on 1 and 2 threads (where the system can run queries in
parallel), p50/p99 single-query latency (ms), recall@k against the scipy exact top-k, build
time, index bytes (files on disk, or the library's own size report), peak RSS of the
process (includes the vectors loaded in Python: see the `baseline` row).

  /work/venv-peers/bin/python scripts/bench/compare_indexes.py \
      --docs /tmp/syn/docs.jsonl --queries /tmp/syn/queries.jsonl \
      --bench-bin target/release/examples/bench_index --out /tmp/syn/results.json
"""

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time

import numpy as np

DIM = 30522


def load_jsonl(path):
    ids, indptr, idx, val = [], [0], [], []
    with open(path) as f:
        for line in f:
            o = json.loads(line)
            ids.append(str(o["id"]))
            idx.extend(o["indices"])
            val.extend(o["values"])
            indptr.append(len(idx))
    return ids, np.array(indptr, np.int64), np.array(idx, np.int32), np.array(val, np.float32)


def peak_rss():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def pct(lat, p):
    return float(np.percentile(np.array(lat) * 1e3, p)) if lat else 0.0


def recall(found, truth):
    hit = tot = 0
    for f, t in zip(found, truth):
        t = set(int(x) for x in t if x >= 0)
        tot += len(t)
        hit += len(t & set(int(x) for x in f))
    return hit / max(tot, 1)


def row(method, qps1, qps2, lat, rec, **extra):
    r = {"method": method, "qps_1t": round(qps1, 1), "qps_2t": None if qps2 is None else round(qps2, 1),
         "p50_ms": round(pct(lat, 50), 3), "p99_ms": round(pct(lat, 99), 3), "recall": round(rec, 4)}
    r.update(extra)
    return r


# ----------------------------------------------------------------------------- workers

def w_baseline(data, truth, a, work):
    return {"system": "baseline (vectors loaded in Python)", "runs": []}


def w_scipy(data, truth, a, work):
    import scipy.sparse as sp
    (dind, didx, dval), (qind, qidx, qval) = data["docs"], data["queries"]
    t = time.perf_counter()
    D = sp.csr_matrix((dval, didx, dind), shape=(len(dind) - 1, DIM))
    build = time.perf_counter() - t
    nq = len(qind) - 1
    lat, found = [], []
    t0 = time.perf_counter()
    for q in range(nq):
        s = time.perf_counter()
        qi, qv = qidx[qind[q]:qind[q + 1]], qval[qind[q]:qind[q + 1]]
        x = np.zeros(DIM, np.float32)
        x[qi] = qv
        scores = D @ x
        top = np.argpartition(-scores, a.k)[: a.k]
        top = top[np.lexsort((top, -scores[top]))]
        found.append(top[scores[top] > 0])
        lat.append(time.perf_counter() - s)
    qps = nq / (time.perf_counter() - t0)
    nbytes = D.data.nbytes + D.indices.nbytes + D.indptr.nbytes
    return {"system": "scipy CSR scan", "build_s": build, "index_bytes": nbytes,
            "runs": [row("exact", qps, None, lat, recall(found, truth))]}


def w_bmp(data, truth, a, work):
    import bmp
    (dind, didx, dval), (qind, qidx, qval) = data["docs"], data["queries"]
    path = os.path.join(work, "index.bmp")
    # bmp stores weights as u8: scale the largest document weight to 255.
    scale = 255.0 / float(dval.max())
    t = time.perf_counter()
    ix = bmp.Indexer(path, bsize=a.bmp_bsize, compress_range=False)
    for d in range(len(dind) - 1):
        s, e = dind[d], dind[d + 1]
        ix.add_document(str(d), {str(i): int(v * scale) for i, v in zip(didx[s:e].tolist(), dval[s:e].tolist())})
    ix.finish()
    build = time.perf_counter() - t
    searcher = bmp.Searcher(path)
    qs = [{str(i): float(v) for i, v in zip(qidx[qind[q]:qind[q + 1]].tolist(), qval[qind[q]:qind[q + 1]].tolist())}
          for q in range(len(qind) - 1)]
    runs = []
    for alpha, beta in [(1.0, 1.0), (0.9, 1.0), (0.8, 1.0), (0.9, 0.5), (0.8, 0.5), (0.7, 0.5)]:
        lat, found = [], []
        t0 = time.perf_counter()
        for q in qs:
            s = time.perf_counter()
            docs, _ = searcher.search(q, k=a.k, alpha=alpha, beta=beta)
            lat.append(time.perf_counter() - s)
            found.append([int(x) for x in docs])
        qps = len(qs) / (time.perf_counter() - t0)
        runs.append(row(f"alpha={alpha} beta={beta}", qps, None, lat, recall(found, truth)))
    return {"system": f"bmp 0.2.8 (bsize {a.bmp_bsize}, u8 weights)", "build_s": build,
            "index_bytes": os.path.getsize(path), "runs": runs}


def w_seismic(data, truth, a, work):
    import seismic
    (dind, didx, dval), (qind, qidx, qval) = data["docs"], data["queries"]
    n = len(dind) - 1
    t = time.perf_counter()
    ds = seismic.SeismicDataset()
    ds.add_documents_by_id([str(d) for d in range(n)], didx.astype(np.int64), dval, dind.astype(np.int64))
    index = seismic.SeismicIndex.build_from_dataset(
        ds, n_postings=a.seismic_postings, centroid_fraction=0.1, summary_energy=0.4, num_threads=2)
    build = time.perf_counter() - t
    base = os.path.join(work, "seismic")
    index.save(base)
    nbytes = sum(os.path.getsize(os.path.join(work, f)) for f in os.listdir(work) if f.startswith("seismic"))
    st = seismic.get_seismic_string()
    nq = len(qind) - 1
    qids = np.array([str(q) for q in range(nq)], dtype=st)
    comps = [np.array([str(i) for i in qidx[qind[q]:qind[q + 1]]], dtype=st) for q in range(nq)]
    vals = [qval[qind[q]:qind[q + 1]].astype(np.float32) for q in range(nq)]
    runs = []
    for cut, hf in [(10, 0.9), (20, 0.9), (20, 0.8), (40, 1.0), (60, 1.0)]:
        lat, found = [], []
        t0 = time.perf_counter()
        for q in range(nq):
            s = time.perf_counter()
            res = index.search(str(q), comps[q], vals[q], a.k, cut, hf)
            lat.append(time.perf_counter() - s)
            found.append([int(r[2]) for r in res])
        qps1 = nq / (time.perf_counter() - t0)
        t0 = time.perf_counter()
        index.batch_search(qids, comps, vals, a.k, cut, hf, num_threads=2)
        qps2 = nq / (time.perf_counter() - t0)
        runs.append(row(f"query_cut={cut} heap_factor={hf}", qps1, qps2, lat, recall(found, truth)))
    return {"system": f"seismic 0.5.4 (n_postings {a.seismic_postings})", "build_s": build,
            "index_bytes": nbytes, "runs": runs}


def w_kannolo(data, truth, a, work):
    import kannolo
    (dind, didx, dval), (qind, qidx, qval) = data["docs"], data["queries"]
    t = time.perf_counter()
    index = kannolo.SparsePlainHNSW.build_from_arrays(didx, dval, dind, m=a.hnsw_m, ef_construction=a.hnsw_efc)
    build = time.perf_counter() - t
    nq = len(qind) - 1
    runs = []
    for ef in [20, 50, 100, 200]:
        lat, found = [], []
        t0 = time.perf_counter()
        for q in range(nq):
            s = time.perf_counter()
            _, ids = index.search(qidx[qind[q]:qind[q + 1]], qval[qind[q]:qind[q + 1]], a.k, ef_search=ef)
            lat.append(time.perf_counter() - s)
            found.append([int(x) for x in ids])
        qps1 = nq / (time.perf_counter() - t0)
        t0 = time.perf_counter()
        index.batch_search(qidx, qval, qind, a.k, ef_search=ef, num_threads=2)
        qps2 = nq / (time.perf_counter() - t0)
        runs.append(row(f"ef_search={ef}", qps1, qps2, lat, recall(found, truth)))
    return {"system": f"kannolo 0.15.1 SparsePlainHNSW (m {a.hnsw_m}, ef_construction {a.hnsw_efc})",
            "build_s": build, "index_bytes": int(index.space_usage_bytes()), "runs": runs}


WORKERS = {"baseline": w_baseline, "scipy": w_scipy, "bmp": w_bmp, "seismic": w_seismic, "kannolo": w_kannolo}


def worker(a):
    z = np.load(a.data)
    data = {"docs": (z["dind"], z["didx"], z["dval"]), "queries": (z["qind"], z["qidx"], z["qval"])}
    truth = z["truth"]
    work = tempfile.mkdtemp(dir=os.path.dirname(a.data))
    try:
        out = WORKERS[a.worker](data, truth, a, work)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    out["peak_rss_bytes"] = peak_rss()
    print(json.dumps(out))


# ----------------------------------------------------------------------------- driver

def exact_truth(dind, didx, dval, qind, qidx, qval, k):
    import scipy.sparse as sp
    D = sp.csr_matrix((dval, didx, dind), shape=(len(dind) - 1, DIM))
    Q = sp.csr_matrix((qval, qidx, qind), shape=(len(qind) - 1, DIM))
    truth = np.full((Q.shape[0], k), -1, np.int64)
    for s in range(0, Q.shape[0], 100):
        S = (Q[s:s + 100] @ D.T).toarray()
        for r in range(S.shape[0]):
            top = np.argpartition(-S[r], k)[:k]
            top = top[np.lexsort((top, -S[r][top]))]
            top = top[S[r][top] > 0]
            truth[s + r, : top.size] = top
    return truth


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--docs")
    ap.add_argument("--queries")
    ap.add_argument("--k", type=int, default=10)
    ap.add_argument("--bench-bin", default="target/release/examples/bench_index")
    ap.add_argument("--block-size", type=int, default=32)
    ap.add_argument("--systems", default="baseline,scipy,splade-rs,bmp,seismic,kannolo")
    ap.add_argument("--bmp-bsize", type=int, default=32)
    ap.add_argument("--seismic-postings", type=int, default=1000)
    ap.add_argument("--hnsw-m", type=int, default=16)
    ap.add_argument("--hnsw-efc", type=int, default=100)
    ap.add_argument("--timeout", type=float, default=1800, help="seconds per system")
    ap.add_argument("--out")
    ap.add_argument("--render", help="print the table of a results JSON file and exit")
    ap.add_argument("--worker", help=argparse.SUPPRESS)
    ap.add_argument("--data", help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.worker:
        return worker(a)
    if a.render:
        with open(a.render) as f:
            return print(markdown(json.load(f)))
    _, dind, didx, dval = load_jsonl(a.docs)
    _, qind, qidx, qval = load_jsonl(a.queries)
    t = time.perf_counter()
    truth = exact_truth(dind, didx, dval, qind, qidx, qval, a.k)
    print(f"exact top-{a.k} of {len(qind) - 1} queries over {len(dind) - 1} docs: {time.perf_counter() - t:.1f}s",
          file=sys.stderr)
    workdir = tempfile.mkdtemp(prefix="compare-", dir=os.path.dirname(os.path.abspath(a.docs)))
    data = os.path.join(workdir, "data.npz")
    np.savez(data, dind=dind, didx=didx, dval=dval, qind=qind, qidx=qidx, qval=qval, truth=truth)
    results = {"docs": len(dind) - 1, "queries": len(qind) - 1, "k": a.k,
               "doc_nnz_mean": float(dind[-1]) / (len(dind) - 1), "query_nnz_mean": float(qind[-1]) / (len(qind) - 1),
               "systems": []}
    for system in a.systems.split(","):
        t = time.perf_counter()
        if system == "splade-rs":
            cmd = [a.bench_bin, a.docs, a.queries, str(a.k), str(a.block_size)]
        else:
            cmd = [sys.executable, os.path.abspath(__file__), "--worker", system, "--data", data, "--k", str(a.k),
                   "--bmp-bsize", str(a.bmp_bsize), "--seismic-postings", str(a.seismic_postings),
                   "--hnsw-m", str(a.hnsw_m), "--hnsw-efc", str(a.hnsw_efc)]
        try:
            p = subprocess.run(cmd, capture_output=True, text=True, timeout=a.timeout)
        except subprocess.TimeoutExpired:
            print(f"{system}: timed out after {a.timeout}s", file=sys.stderr)
            results["systems"].append({"system": system, "error": f"timed out after {a.timeout}s"})
            continue
        if p.returncode != 0:
            print(f"{system}: failed ({p.returncode}): {p.stderr[-2000:]}", file=sys.stderr)
            results["systems"].append({"system": system, "error": p.stderr[-500:]})
            continue
        r = json.loads(p.stdout.strip().splitlines()[-1])
        results["systems"].append(r)
        print(f"{system}: done in {time.perf_counter() - t:.0f}s", file=sys.stderr)
        print(json.dumps(r), file=sys.stderr)
    shutil.rmtree(workdir, ignore_errors=True)
    text = json.dumps(results, indent=1)
    if a.out:
        with open(a.out, "w") as f:
            f.write(text)
    print(markdown(results))


def markdown(res):
    lines = [f"{res['docs']} docs ({res['doc_nnz_mean']:.0f} terms), {res['queries']} queries "
             f"({res['query_nnz_mean']:.0f} terms), k = {res['k']}", "",
             "| system | setting | QPS 1t | QPS 2t | 1/p50 (q/s) | p50 ms | p99 ms | recall@k | build s | index MB | peak RSS MB |",
             "|---|---|---|---|---|---|---|---|---|---|---|"]
    for s in res["systems"]:
        if "error" in s:
            lines.append(f"| {s['system']} | failed: {s['error'][-80:]} | | | | | | | | | |")
            continue
        mb = lambda b: f"{b / 2**20:.1f}" if b is not None else ""
        runs = s["runs"] or [{"method": "-"}]
        for r in runs:
            p50 = r.get("p50_ms")
            lines.append("| {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} |".format(
                s["system"], r["method"], r.get("qps_1t", ""), r.get("qps_2t") or "-",
                f"{1e3 / p50:.0f}" if p50 else "", r.get("p50_ms", ""),
                r.get("p99_ms", ""), r.get("recall", ""), f"{s['build_s']:.1f}" if "build_s" in s else "",
                mb(s.get("index_bytes")), mb(s.get("peak_rss_bytes"))))
    return "\n".join(lines)


if __name__ == "__main__":
    main()
