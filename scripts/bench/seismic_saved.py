"""Seismic (pyseismic-lsr) on one collection with a saved index: builds it once (or loads the one
saved before), then times a grid of settings one call per query (its loop) and with its batch
call, recall@k against the exact top k (scipy float32 products, as compare_indexes.py).

    /work/venv-search/bin/python scripts/bench/seismic_saved.py --docs /tmp/flat1m/docs.bin \
        --queries /tmp/flat1m/q200.jsonl --index /tmp/seismic-flat1m/index \
        --postings 3500 --grid 10:0.9,20:0.9,30:0.8,40:0.9,40:1 --out seismic_flat1m.json

The first run builds (timed; `--build-threads`, default 2 as compare_indexes.py) and saves the
index at --index; later runs load it (load time reported, no build time).
"""
import argparse
import json
import os
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from compare_indexes import exact_truth, grid, load_vectors, peak_rss, recall, row  # noqa: E402


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--docs", required=True)
    ap.add_argument("--queries", required=True)
    ap.add_argument("--index", required=True, help="path prefix of the saved index")
    ap.add_argument("--postings", type=int, default=3500)
    ap.add_argument("--build-threads", type=int, default=2)
    ap.add_argument("--grid", default="10:0.9,20:0.9,30:0.8")
    ap.add_argument("--k", type=int, default=10)
    ap.add_argument("--out")
    a = ap.parse_args()
    import seismic

    _, qind, qidx, qval = load_vectors(a.queries)
    truth_path = a.index + f".truth-{os.path.basename(a.queries)}.npy"
    out = {"system": f"seismic 0.5.4 (n_postings {a.postings})", "loadavg_start": os.getloadavg(),
           "started": time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime())}
    index_files = lambda: [f for f in os.listdir(os.path.dirname(a.index) or ".")
                           if f.startswith(os.path.basename(a.index)) and ".truth-" not in f]
    if os.path.exists(truth_path) and index_files():
        truth = np.load(truth_path)
        t = time.perf_counter()
        index = seismic.SeismicIndex.load(a.index + ".index.seismic")
        out["load_s"] = round(time.perf_counter() - t, 1)
    else:
        _, dind, didx, dval = load_vectors(a.docs)
        truth = exact_truth(dind, didx, dval, qind, qidx, qval, a.k)
        n = len(dind) - 1
        t = time.perf_counter()
        ds = seismic.SeismicDataset()
        ds.add_documents_by_id([str(d) for d in range(n)], didx.astype(np.int64), dval, dind.astype(np.int64))
        del dind, didx, dval
        index = seismic.SeismicIndex.build_from_dataset(
            ds, n_postings=a.postings, centroid_fraction=0.1, summary_energy=0.4, num_threads=a.build_threads)
        out["build_s"] = round(time.perf_counter() - t, 1)
        out["loadavg_after_build"] = os.getloadavg()
        del ds
        index.save(a.index)
        np.save(truth_path, truth)
        print(f"built in {out['build_s']} s, saved", file=sys.stderr)
    d = os.path.dirname(a.index) or "."
    out["index_bytes"] = sum(os.path.getsize(os.path.join(d, f)) for f in index_files())
    st = seismic.get_seismic_string()
    nq = len(qind) - 1
    qids = np.array([str(q) for q in range(nq)], dtype=st)
    comps = [np.array([str(i) for i in qidx[qind[q]:qind[q + 1]]], dtype=st) for q in range(nq)]
    vals = [qval[qind[q]:qind[q + 1]].astype(np.float32) for q in range(nq)]
    runs = []
    for cut, hf in grid(a.grid):
        cut = int(cut)
        load = os.getloadavg()[0]
        lat, found = [], []
        t0 = time.perf_counter()
        for q in range(nq):
            s = time.perf_counter()
            res = index.search(str(q), comps[q], vals[q], a.k, cut, hf)
            lat.append(time.perf_counter() - s)
            found.append([int(r[2]) for r in res])
        qps1 = nq / (time.perf_counter() - t0)
        t0 = time.perf_counter()
        batch = index.batch_search(qids, comps, vals, a.k, cut, hf, num_threads=2)
        qps2 = nq / (time.perf_counter() - t0)
        t0 = time.perf_counter()
        index.batch_search(qids, comps, vals, a.k, cut, hf, num_threads=1)
        qps_b1 = nq / (time.perf_counter() - t0)
        # Each result is (query_id, score, doc_id); the lists need not come in query order.
        found_b = [[] for _ in range(nq)]
        for res in batch:
            if res:
                found_b[int(res[0][0])] = [int(r[2]) for r in res]
        runs.append(row(f"query_cut={cut} heap_factor={hf}", qps1, qps2, lat, recall(found, truth),
                        qps_batch_1t=round(qps_b1, 1), recall_batch=round(recall(found_b, truth), 4), load_1min=load))
        print(json.dumps(runs[-1]), file=sys.stderr)
    out["runs"] = runs
    out["peak_rss_bytes"] = peak_rss()
    out["loadavg_end"] = os.getloadavg()
    text = json.dumps(out, indent=1)
    if a.out:
        with open(a.out, "w") as f:
            f.write(text)
    print(text)


if __name__ == "__main__":
    main()
