#!/usr/bin/env python3
"""Merges several compare_indexes.py results of the same command into one: every number of
every (system, setting) row becomes the median over the runs.

  python3 scripts/bench/median_of_runs.py run1.json run2.json run3.json --out median.json

This machine's timings swing by 20-30 % from minute to minute (other tenants of the host), so a
single run can rank two settings of one engine the wrong way round. Running the whole command
N times back to back and taking medians per row keeps each engine's rows comparable while the
engines still alternate within every run. The merged file keeps each row's per-run `qps_1t`
values (`qps_1t_runs`) and renders with `compare_indexes.py --render` and
`best_at_recall.py` like a single run.
"""

import argparse
import json
import statistics

NUMBERS_RUN = ("qps_1t", "qps_2t", "p50_ms", "p99_ms", "recall", "blocks_scored", "qps_1t_batch")
NUMBERS_SYSTEM = ("build_s", "index_bytes", "peak_rss_bytes", "wall_s")


def median(values):
    values = [v for v in values if v is not None]
    return round(statistics.median(values), 4) if values else None


def merge(results):
    first = results[0]
    out = {k: v for k, v in first.items() if k != "systems"}
    out["runs_merged"] = len(results)
    out["started"] = " / ".join(r.get("started", "?") for r in results)
    out["loadavg_end"] = results[-1].get("loadavg_end")
    out["systems"] = []
    for i, system in enumerate(first["systems"]):
        same = [r["systems"][i] for r in results]
        names = {s["system"] for s in same}
        if len(names) != 1:
            raise SystemExit(f"system {i} differs between runs: {sorted(names)}")
        if any("error" in s for s in same):
            out["systems"].append(next(s for s in same if "error" in s))
            continue
        merged = dict(system)
        for key in NUMBERS_SYSTEM:
            if key in system:
                merged[key] = median([s.get(key) for s in same])
        merged["loadavg"] = [max(s["loadavg"][j] for s in same) for j in range(3)]
        merged["runs"] = []
        for j, run in enumerate(system["runs"]):
            rows = [s["runs"][j] for s in same]
            if {r["method"] for r in rows} != {run["method"]}:
                raise SystemExit(f"{system['system']}: settings differ between runs")
            row = dict(run)
            for key in NUMBERS_RUN:
                if key in run:
                    row[key] = median([r.get(key) for r in rows])
            row["qps_1t_runs"] = [r.get("qps_1t") for r in rows]
            merged["runs"].append(row)
        out["systems"].append(merged)
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("results", nargs="+")
    ap.add_argument("--out", required=True)
    a = ap.parse_args()
    results = [json.load(open(p)) for p in a.results]
    with open(a.out, "w") as f:
        json.dump(merge(results), f, indent=1)


if __name__ == "__main__":
    main()
