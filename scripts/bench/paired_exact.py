#!/usr/bin/env python3
"""Exact search, splade-rs against splade-index (the fastest exact peer), in paired rounds.

On a machine whose speed drifts by a third within minutes, one table per collection
(issue17_tables.sh) can put the two systems minutes apart: the ratio then moves with the
drift. Here every round runs both, one right after the other (compare_indexes.py with
`--systems splade-rs,splade-index`), on each collection in turn, and the ratios are taken per
round; the summary gives each collection's median and range of:

  1t  our one-thread QPS (one call per query)  / splade-index's one-thread batch call
      (all queries in one call: its fastest use on one thread, no Python cost per query)
  2t  our two-thread batch call                / splade-index's two-thread batch call

  /work/venv-search/bin/python scripts/bench/paired_exact.py --rounds 5 --out /tmp/paired \\
      scifact msm cacm cisi cran dbp clim

A collection SET reads /tmp/d6/vec/SET.vec.jsonl and the queries of SETq1k.vec.jsonl (or
SETq.vec.jsonl): see issue17_tables.sh for how they are made.
"""

import argparse
import json
import os
import statistics
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))


def queries_of(vec, name):
    q1k = os.path.join(vec, f"{name}q1k.vec.jsonl")
    return q1k if os.path.exists(q1k) else os.path.join(vec, f"{name}q.vec.jsonl")


def exact_row(result, prefix):
    for s in result["systems"]:
        if str(s.get("system", "")).startswith(prefix):
            if "error" in s:
                sys.exit(f"{prefix}: {s['error']}")
            return s["runs"][0]
    sys.exit(f"no {prefix} row in the results")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("sets", nargs="+")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--vec", default="/tmp/d6/vec")
    ap.add_argument("--bench-bin", help="bench_index binary (default: built by compare_indexes.py)")
    ap.add_argument("--out", required=True, help="directory for each round's JSON and the summary")
    a = ap.parse_args()
    os.makedirs(a.out, exist_ok=True)
    ratios = {s: {"1t": [], "2t": []} for s in a.sets}
    for r in range(a.rounds):
        for s in a.sets:
            out = os.path.join(a.out, f"{s}-{r}.json")
            cmd = [sys.executable, os.path.join(HERE, "compare_indexes.py"),
                   "--docs", os.path.join(a.vec, f"{s}.vec.jsonl"), "--queries", queries_of(a.vec, s),
                   "--systems", "splade-rs,splade-index", "--rs-grid", "0.9:1", "--out", out]
            if a.bench_bin:
                cmd += ["--bench-bin", a.bench_bin]
            subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            with open(out) as f:
                res = json.load(f)
            ours, theirs = exact_row(res, "splade-rs"), exact_row(res, "splade-index")
            one = ours["qps_1t"] / theirs["qps_1t_batch"]
            two = ours["qps_2t"] / theirs["qps_2t"]
            ratios[s]["1t"].append(one)
            ratios[s]["2t"].append(two)
            print(f"round {r} {s}: ours {ours['qps_1t']:.0f} / {ours['qps_2t']:.0f}, splade-index batch "
                  f"{theirs['qps_1t_batch']:.0f} / {theirs['qps_2t']:.0f}: {one:.2f}x / {two:.2f}x "
                  f"(load {os.getloadavg()[0]:.2f})", file=sys.stderr)
    lines = ["| collection | exact 1t vs its 1-thread batch: median (range) | exact 2t vs its 2-thread batch: median (range) |",
             "|---|---|---|"]
    for s in a.sets:
        cell = lambda v: f"{statistics.median(v):.2f}x ({min(v):.2f}-{max(v):.2f})"
        lines.append(f"| {s} | {cell(ratios[s]['1t'])} | {cell(ratios[s]['2t'])} |")
    text = "\n".join(lines)
    with open(os.path.join(a.out, "summary.md"), "w") as f:
        f.write(text + "\n")
    with open(os.path.join(a.out, "ratios.json"), "w") as f:
        json.dump(ratios, f, indent=1)
    print(text)


if __name__ == "__main__":
    main()
