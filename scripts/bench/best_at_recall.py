#!/usr/bin/env python3
"""Per engine, the fastest setting reaching a recall@k target, from compare_indexes.py results.

  python3 scripts/bench/best_at_recall.py results.json [--recall 0.99] [--by qps_1t|qps_2t|p50]

Prints a Markdown table: for every system, its fastest run with recall >= the target (by
single-thread QPS unless --by says otherwise), or its best recall when none reaches it; then
the ratio of splade-rs's fastest qualifying approximate / exact setting to the fastest peer's.
"""

import argparse
import json


def speed(r, by):
    if by == "p50":
        return 1e3 / r["p50_ms"] if r.get("p50_ms") else 0.0
    return r.get(by) or 0.0


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("results")
    ap.add_argument("--recall", type=float, default=0.99)
    ap.add_argument("--by", default="qps_1t", choices=["qps_1t", "qps_2t", "p50"])
    a = ap.parse_args()
    res = json.load(open(a.results))
    print(f"{res['docs']} docs, {res['queries']} queries; fastest setting with recall@{res['k']} >= {a.recall} "
          f"(ranked by {a.by})\n")
    print("| system | setting | recall@k | QPS 1t | QPS 2t | 1/p50 (q/s) | p50 ms |")
    print("|---|---|---|---|---|---|---|")
    best = {}
    for s in res["systems"]:
        if "error" in s or not s.get("runs"):
            if "error" in s:
                print(f"| {s['system']} | {s['error'][-60:]} | | | | | |")
            continue
        ok = [r for r in s["runs"] if r["recall"] >= a.recall]
        if not ok:
            r = max(s["runs"], key=lambda r: r["recall"])
            print(f"| {s['system']} | none reaches {a.recall} (best: {r['method']}) | {r['recall']} | "
                  f"{r['qps_1t']} | {r.get('qps_2t') or '-'} | {1e3 / r['p50_ms']:.0f} | {r['p50_ms']} |")
            continue
        r = max(ok, key=lambda r: speed(r, a.by))
        best[s["system"]] = r
        print(f"| {s['system']} | {r['method']} | {r['recall']} | {r['qps_1t']} | {r.get('qps_2t') or '-'} | "
              f"{1e3 / r['p50_ms']:.0f} | {r['p50_ms']} |")
    ours = {k: v for k, v in best.items() if k.startswith("splade-rs")}
    peers = {k: v for k, v in best.items() if not k.startswith("splade-rs")}
    if ours and peers:
        o_name, o = max(ours.items(), key=lambda kv: speed(kv[1], a.by))
        p_name, p = max(peers.items(), key=lambda kv: speed(kv[1], a.by))
        print(f"\nsplade-rs ({o['method']}) / fastest peer ({p_name}, {p['method']}): "
              f"{speed(o, a.by) / speed(p, a.by):.2f}x by {a.by}")


if __name__ == "__main__":
    main()
