#!/usr/bin/env python3
"""splade-rs vs peer sparse indexes, in one run, on the same vectors.

Reads documents and queries as {"id", "indices", "values"} JSONL (make_synthetic.py, or
`splade encode --id-field`), computes the exact top-k with a scipy CSR scan (the reference
for recall), then runs each system in its own subprocess (so peak RSS is per system):

  scipy      exact: one CSR mat-vec per query (1 thread)
  splade-rs  crates/index/benches/bench_index.rs (exact + alpha/beta grid; 1 and 2 threads; built
             with `cargo bench --no-run` unless --bench-bin names the binary)
  bmp        bmp 0.2.8 (Mallia et al.): exact (alpha = beta = 1) and approximate; document
             weights quantised to u8 (largest weight -> 255), so "exact" is exact for the
             quantised weights
  seismic    pyseismic-lsr 0.5.4: approximate (query_cut, heap_factor grid)
  kannolo    kannolo 0.15.1 SparsePlainHNSW (graph; ef_search grid)
  splade-index  splade-index 0.2.0 (numba backend, exact): its text-only `index()` is bypassed by
             filling the same term-major CSC arrays (`scores` = data / indices / indptr / num_docs)
             that `index()` derives from SparseEncoder output, then calling its retrieval
             function `_retrieve_numba_functional` with our query vectors (see BENCHMARKS.md)

Inputs may be JSONL or the Seismic binary layout (`.bin`, as make_synthetic.py writes next to the
JSONL; much faster to load at 1M documents). splade-rs always reads the JSONL (DOCS with the
extension replaced by .jsonl). Every grid is a command-line option, so each engine can be swept
to its fastest setting with recall@k >= 0.99. `--timeout-SYSTEM S` bounds one system; a system
that does not finish (e.g. kannolo's HNSW build at 1M documents) is reported with the time it
was given. The load average is recorded when each system starts.

Per system and setting: QPS on 1 and 2 threads (where the system can run queries in
parallel), p50/p99 single-query latency (ms), recall@k against the scipy exact top-k, build
time, index bytes (files on disk, or the library's own size report), peak RSS of the
process (includes the vectors loaded in Python: see the `baseline` row).

  /work/venv-peers/bin/python scripts/bench/compare_indexes.py \
      --docs /tmp/syn/docs.jsonl --queries /tmp/syn/queries.jsonl \
      --out /tmp/syn/results.json
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


def load_bin(path):
    """The Seismic / kANNolo binary layout: u32 count; per vector u32 nnz, nnz u32 ids, nnz f32."""
    raw = np.fromfile(path, dtype="<u4")
    n = int(raw[0])
    indptr = np.zeros(n + 1, np.int64)
    starts = np.zeros(n, np.int64)
    pos = 1
    for i in range(n):
        m = int(raw[pos])
        starts[i] = pos + 1
        indptr[i + 1] = indptr[i] + m
        pos += 1 + 2 * m
    lens = np.diff(indptr)
    rep = np.repeat(starts - indptr[:-1], lens)
    flat = np.arange(indptr[-1], dtype=np.int64) + rep
    idx = raw[flat].astype(np.int32)
    val = raw[flat + np.repeat(lens, lens)].view(np.float32).copy()
    return None, indptr, idx, val


def load_vectors(path):
    return load_bin(path) if path.endswith(".bin") else load_jsonl(path)


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
    """Peak RSS of this process since exec (VmHWM). getrusage's ru_maxrss is not used: Linux
    carries it over from the parent at fork, so a worker would report the driver's peak."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
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


def grid(text, conv=float):
    """'a:b,c:d' -> [(a, b), (c, d)]; 'a,b' -> [a, b]."""
    out = []
    for item in text.split(","):
        parts = [conv(x) for x in item.split(":")]
        out.append(tuple(parts) if len(parts) > 1 else parts[0])
    return out


MIN_TIMED_S = 0.5


def repeated_qps(call, nq, min_s=MIN_TIMED_S):
    """QPS of `call()` (which searches `nq` queries), called until `min_s` seconds have passed
    (at least once): a 200-query batch on two threads takes tens of milliseconds, too short to
    time once (bench_index does the same for splade-rs)."""
    calls, t0 = 0, time.perf_counter()
    while True:
        call()
        calls += 1
        elapsed = time.perf_counter() - t0
        if elapsed >= min_s:
            return calls * nq / elapsed


def threaded_qps(fn, items, threads=2):
    """QPS of fn over items with `threads` Python threads (only useful where fn releases the GIL)."""
    from concurrent.futures import ThreadPoolExecutor
    t0 = time.perf_counter()
    with ThreadPoolExecutor(max_workers=threads) as ex:
        list(ex.map(fn, items))
    return len(items) / (time.perf_counter() - t0)


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
    nq = min(len(qind) - 1, a.exact_queries or len(qind) - 1)

    def one(q):
        qi, qv = qidx[qind[q]:qind[q + 1]], qval[qind[q]:qind[q + 1]]
        x = np.zeros(DIM, np.float32)
        x[qi] = qv
        scores = D @ x
        top = np.argpartition(-scores, a.k)[: a.k]
        top = top[np.lexsort((top, -scores[top]))]
        return top[scores[top] > 0]

    lat, found = [], []
    t0 = time.perf_counter()
    for q in range(nq):
        s = time.perf_counter()
        found.append(one(q))
        lat.append(time.perf_counter() - s)
    qps = nq / (time.perf_counter() - t0)
    qps2 = threaded_qps(one, list(range(nq)))
    nbytes = D.data.nbytes + D.indices.nbytes + D.indptr.nbytes
    label = "exact" if nq == len(qind) - 1 else f"exact (first {nq} queries)"
    return {"system": "scipy CSR scan", "build_s": build, "index_bytes": nbytes,
            "runs": [row(label, qps, qps2, lat, recall(found, truth[:nq]))]}


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
    for alpha, beta in grid(a.bmp_grid):
        lat, found = [], []
        t0 = time.perf_counter()
        for q in qs:
            s = time.perf_counter()
            docs, _ = searcher.search(q, k=a.k, alpha=alpha, beta=beta)
            lat.append(time.perf_counter() - s)
            found.append([int(x) for x in docs])
        qps = len(qs) / (time.perf_counter() - t0)
        qps2 = repeated_qps(lambda: threaded_qps(lambda q: searcher.search(q, k=a.k, alpha=alpha, beta=beta), qs),
                            len(qs))
        runs.append(row(f"alpha={alpha} beta={beta}", qps, qps2, lat, recall(found, truth)))
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
    for cut, hf in grid(a.seismic_grid):
        cut = int(cut)
        lat, found = [], []
        t0 = time.perf_counter()
        for q in range(nq):
            s = time.perf_counter()
            res = index.search(str(q), comps[q], vals[q], a.k, cut, hf)
            lat.append(time.perf_counter() - s)
            found.append([int(r[2]) for r in res])
        qps1 = nq / (time.perf_counter() - t0)
        qps2 = repeated_qps(lambda: index.batch_search(qids, comps, vals, a.k, cut, hf, num_threads=2), nq)
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
    for ef in grid(a.kannolo_grid, int):
        lat, found = [], []
        t0 = time.perf_counter()
        for q in range(nq):
            s = time.perf_counter()
            _, ids = index.search(qidx[qind[q]:qind[q + 1]], qval[qind[q]:qind[q + 1]], a.k, ef_search=ef)
            lat.append(time.perf_counter() - s)
            found.append([int(x) for x in ids])
        qps1 = nq / (time.perf_counter() - t0)
        qps2 = repeated_qps(lambda: index.batch_search(qidx, qval, qind, a.k, ef_search=ef, num_threads=2), nq)
        runs.append(row(f"ef_search={ef}", qps1, qps2, lat, recall(found, truth)))
    return {"system": f"kannolo 0.15.1 SparsePlainHNSW (m {a.hnsw_m}, ef_construction {a.hnsw_efc})",
            "build_s": build, "index_bytes": int(index.space_usage_bytes()), "runs": runs}


def w_splade_index(data, truth, a, work):
    import numba
    from splade_index import SPLADE
    from splade_index.numba.retrieve_utils import _retrieve_numba_functional
    import scipy.sparse as sp
    (dind, didx, dval), (qind, qidx, qval) = data["docs"], data["queries"]
    n = len(dind) - 1
    t = time.perf_counter()
    # What SPLADE.index() builds from `model.encode_document(...).to_sparse_csc()`: a
    # vocabulary x documents CSC (indptr over terms, indices = document numbers), float32 /
    # int32 as its defaults.
    csc = sp.csr_matrix((dval, didx, dind), shape=(n, DIM)).tocsc()
    csc.sort_indices()
    model = SPLADE(backend="numba")
    model.scores = {"data": csc.data.astype(np.float32), "indices": csc.indices.astype(np.int32),
                    "indptr": csc.indptr.astype(np.int32), "num_docs": n}
    model.document_ids = np.arange(n)
    build = time.perf_counter() - t
    nbytes = sum(model.scores[x].nbytes for x in ("data", "indices", "indptr"))
    nq = len(qind) - 1
    qids = [qidx[qind[q]:qind[q + 1]].astype(np.int32) for q in range(nq)]
    qws = [qval[qind[q]:qind[q + 1]].astype(np.float32) for q in range(nq)]

    def batch(lo, hi, threads):
        return _retrieve_numba_functional(qids[lo:hi], qws[lo:hi], model.scores, k=a.k, sorted=True,
                                          return_as="tuple", show_progress=False, n_threads=threads)

    batch(0, 1, 1)  # JIT compilation (untimed, as SPLADE.index(compile_numba_code=True) does)
    batch(0, 1, 2)
    lat, found = [], []
    t0 = time.perf_counter()
    for q in range(nq):
        s = time.perf_counter()
        docs, scores = batch(q, q + 1, 1)
        lat.append(time.perf_counter() - s)
        found.append([int(d) for d, x in zip(docs[0], scores[0]) if x > 0])
    qps1 = nq / (time.perf_counter() - t0)
    qps2 = repeated_qps(lambda: batch(0, nq, 2), nq)
    qps1b = repeated_qps(lambda: batch(0, nq, 1), nq)
    runs = [row("exact (one call per query)", qps1, qps2, lat, recall(found, truth), qps_1t_batch=round(qps1b, 1))]
    return {"system": f"splade-index 0.2.0 (numba {numba.__version__}, precomputed CSC)", "build_s": build,
            "index_bytes": nbytes, "runs": runs}


WORKERS = {"splade-index": w_splade_index, "baseline": w_baseline, "scipy": w_scipy, "bmp": w_bmp, "seismic": w_seismic, "kannolo": w_kannolo}


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
    """Exact top-k (score descending, ties to the smaller document) by CSR x dense products:
    scipy scores in float32, 50 queries at a time."""
    import scipy.sparse as sp
    D = sp.csr_matrix((dval, didx, dind), shape=(len(dind) - 1, DIM))
    Q = sp.csr_matrix((qval, qidx, qind), shape=(len(qind) - 1, DIM))
    truth = np.full((Q.shape[0], k), -1, np.int64)
    for s in range(0, Q.shape[0], 50):
        S = np.asarray(D @ Q[s:s + 50].T.toarray()).T
        for r in range(S.shape[0]):
            top = np.argpartition(-S[r], k)[:k]
            top = top[np.lexsort((top, -S[r][top]))]
            top = top[S[r][top] > 0]
            truth[s + r, : top.size] = top
    return truth


def build_bench_bin():
    """Builds crates/index/benches/bench_index.rs (release-optimised `bench` profile) and returns
    the path of its executable (target/release/deps/bench_index-HASH)."""
    out = subprocess.run(["cargo", "bench", "-p", "splade-index", "--bench", "bench_index", "--no-run",
                          "--message-format=json"], check=True, capture_output=True, text=True).stdout
    for line in out.splitlines():
        msg = json.loads(line)
        if msg.get("reason") == "compiler-artifact" and msg["target"]["name"] == "bench_index" and msg.get("executable"):
            return msg["executable"]
    sys.exit("cargo bench --no-run built no bench_index executable")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--docs")
    ap.add_argument("--queries")
    ap.add_argument("--k", type=int, default=10)
    ap.add_argument("--bench-bin", help="the splade-rs bench_index binary (default: built by "
                    "`cargo bench -p splade-index --bench bench_index --no-run`, from the current directory)")
    ap.add_argument("--block-size", default="auto", help="splade-rs documents per block, or auto (chosen from the documents)")
    ap.add_argument("--systems", default="baseline,scipy,splade-index,splade-rs,bmp,seismic,kannolo")
    ap.add_argument("--bmp-bsize", type=int, default=32)
    ap.add_argument("--seismic-postings", type=int, default=1000)
    ap.add_argument("--hnsw-m", type=int, default=16)
    ap.add_argument("--hnsw-efc", type=int, default=100)
    ap.add_argument("--timeout", type=float, default=1800, help="seconds per system")
    for name in ("scipy", "splade-rs", "bmp", "seismic", "kannolo", "splade-index"):
        ap.add_argument(f"--timeout-{name}", type=float, help=f"seconds for {name} (default --timeout)")
    ap.add_argument("--rs-grid", default="0.95:1,0.9:1,0.8:1,0.95:0.7,0.9:0.7,0.8:0.5,0.6:0.4",
                    help="splade-rs approximate settings ALPHA:BETA[:MAX_QUERY_TERMS],...")
    ap.add_argument("--bmp-grid", default="1:1,0.9:1,0.8:1,0.9:0.5,0.8:0.5,0.7:0.5")
    ap.add_argument("--seismic-grid", default="10:0.9,20:0.9,20:0.8,40:1,60:1", help="QUERY_CUT:HEAP_FACTOR,...")
    ap.add_argument("--kannolo-grid", default="20,50,100,200", help="ef_search values")
    ap.add_argument("--exact-queries", type=int, default=0,
                    help="time the scipy scan on the first N queries only (0: all)")
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
    t = time.perf_counter()
    _, dind, didx, dval = load_vectors(a.docs)
    _, qind, qidx, qval = load_vectors(a.queries)
    print(f"loaded {len(dind) - 1} docs, {len(qind) - 1} queries: {time.perf_counter() - t:.1f}s", file=sys.stderr)
    t = time.perf_counter()
    truth = exact_truth(dind, didx, dval, qind, qidx, qval, a.k)
    print(f"exact top-{a.k} of {len(qind) - 1} queries over {len(dind) - 1} docs: {time.perf_counter() - t:.1f}s",
          file=sys.stderr)
    workdir = tempfile.mkdtemp(prefix="compare-", dir=os.path.dirname(os.path.abspath(a.docs)))
    data = os.path.join(workdir, "data.npz")
    np.savez(data, dind=dind, didx=didx, dval=dval, qind=qind, qidx=qidx, qval=qval, truth=truth)
    results = {"docs": len(dind) - 1, "queries": len(qind) - 1, "k": a.k,
               "doc_nnz_mean": float(dind[-1]) / (len(dind) - 1), "query_nnz_mean": float(qind[-1]) / (len(qind) - 1),
               "loadavg_start": os.getloadavg(), "started": time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime()),
               "systems": []}
    for system in a.systems.split(","):
        t = time.perf_counter()
        load = os.getloadavg()
        timeout = getattr(a, "timeout_" + system.replace("-", "_"), None) or a.timeout
        if system == "splade-rs":
            if a.bench_bin is None:
                a.bench_bin = build_bench_bin()
                print(f"splade-rs: {a.bench_bin}", file=sys.stderr)
            jsonl = lambda p: p[: -len(".bin")] + ".jsonl" if p.endswith(".bin") else p
            cmd = [a.bench_bin, jsonl(a.docs), jsonl(a.queries), str(a.k), str(a.block_size), a.rs_grid]
        else:
            cmd = [sys.executable, os.path.abspath(__file__), "--worker", system, "--data", data, "--k", str(a.k),
                   "--bmp-bsize", str(a.bmp_bsize), "--seismic-postings", str(a.seismic_postings),
                   "--hnsw-m", str(a.hnsw_m), "--hnsw-efc", str(a.hnsw_efc), "--bmp-grid", a.bmp_grid,
                   "--seismic-grid", a.seismic_grid, "--kannolo-grid", a.kannolo_grid,
                   "--exact-queries", str(a.exact_queries)]
        print(f"{system}: start at load {load[0]:.2f}", file=sys.stderr)
        try:
            p = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
        except subprocess.TimeoutExpired:
            print(f"{system}: timed out after {timeout:.0f}s", file=sys.stderr)
            results["systems"].append({"system": system, "loadavg": load,
                                       "error": f"not finished after {timeout:.0f} s (killed)"})
            continue
        if p.returncode != 0:
            print(f"{system}: failed ({p.returncode}): {p.stderr[-2000:]}", file=sys.stderr)
            results["systems"].append({"system": system, "error": p.stderr[-500:]})
            continue
        r = json.loads(p.stdout.strip().splitlines()[-1])
        r["loadavg"] = load
        r["wall_s"] = round(time.perf_counter() - t, 1)
        results["systems"].append(r)
        print(f"{system}: done in {time.perf_counter() - t:.0f}s", file=sys.stderr)
        print(json.dumps(r), file=sys.stderr)
    shutil.rmtree(workdir, ignore_errors=True)
    results["loadavg_end"] = os.getloadavg()
    text = json.dumps(results, indent=1)
    if a.out:
        with open(a.out, "w") as f:
            f.write(text)
    print(markdown(results))


def build(s):
    """The build column: seconds; splade-rs gives on disk / in memory (from CSR arrays)."""
    if "build_s" not in s:
        return ""
    if "build_memory_s" in s:
        return f"{s['build_s']:.1f} disk / {s['build_memory_s']:.1f} mem"
    return f"{s['build_s']:.1f}"


def markdown(res):
    la = lambda x: "/".join(f"{v:.1f}" for v in x) if x else "?"
    merged = f"median of {res['runs_merged']} runs (median_of_runs.py); " if res.get("runs_merged") else ""
    lines = [f"{merged}{res['docs']} docs ({res['doc_nnz_mean']:.0f} terms), {res['queries']} queries "
             f"({res['query_nnz_mean']:.0f} terms), k = {res['k']}; started {res.get('started', '?')}, "
             f"load average (1/5/15 min) {la(res.get('loadavg_start'))} at the start, "
             f"{la(res.get('loadavg_end'))} at the end", "",
             "| system | setting | QPS 1t | QPS 2t | 1/p50 (q/s) | p50 ms | p99 ms | recall@k | build s | index MB | peak RSS MB | load (1 min) |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for s in res["systems"]:
        load1 = f"{s['loadavg'][0]:.1f}" if s.get("loadavg") else ""
        if "error" in s:
            lines.append(f"| {s['system']} | {s['error'][-80:]} | | | | | | | | | | {load1} |")
            continue
        mb = lambda b: f"{b / 2**20:.1f}" if b is not None else ""
        runs = s["runs"] or [{"method": "-"}]
        for r in runs:
            p50 = r.get("p50_ms")
            lines.append("| {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} |".format(
                s["system"], r["method"], r.get("qps_1t", ""), r.get("qps_2t") or "-",
                f"{1e3 / p50:.0f}" if p50 else "", r.get("p50_ms", ""),
                r.get("p99_ms", ""), r.get("recall", ""), build(s),
                mb(s.get("index_bytes")), mb(s.get("peak_rss_bytes")), load1))
    return "\n".join(lines)


if __name__ == "__main__":
    main()
