#!/usr/bin/env python3
"""Python-side encoding: splade_rs vs sentence-transformers (torch) vs sentence-transformers'
ONNX backend, same texts, same machine, 2 threads, batch 32 (issue #16).

Each measurement runs in its own process: load the model, encode one batch untimed (warm-up),
time `encode_document` over every text; peak RSS is the process's VmHWM. Then the per-call cost
of one short query: `encode_query` on one string, 300 timed calls after 20 warm-up calls, p50,
p99 and mean. For splade_rs the Python overhead is that p50 minus the Rust library's own p50
for the same query (`splade bench --task query --per-text` over the query repeated 300 times).

Engines and where they run:
  splade_rs   --rs-python: a Python with the splade_rs wheel (e.g. target/python-venv after
              `cargo test -p splade-python`, or `pip install` of the built wheel)
  st-torch    --st-python: sentence-transformers 6.2 + torch (the same venv works: the test
              requirements install both)
  st-onnx     --onnx-python: sentence-transformers 5.1 + optimum-onnx[onnxruntime] +
              transformers 4.57 (its ONNX export needs these older pins), `backend="onnx"`,
              exported from a copy of the model folder

Texts (from ../shared/data): Quora test questions and SciFact passages of 150-256 splade-tiny
tokens, as scripts/bench/compare_encoders.py picks them. Model: splade-tiny (the default).

  HF_HUB_OFFLINE=1 target/python-venv/bin/python scripts/bench/python_encode.py \\
      --rs-python target/python-venv/bin/python --st-python target/python-venv/bin/python \\
      --onnx-python /path/to/onnx-venv/bin/python
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(Path(__file__).resolve().parent))
from compare_encoders import peak_rss, quora_questions, scifact_passages  # noqa: E402

THREADS = 2
BATCH = 32
QUERY = "what causes the northern lights"
CALLS = 300


def load(engine: str, model_dir: str):
    if engine == "splade_rs":
        import splade_rs

        return splade_rs.SparseEncoder(model_dir, threads=THREADS)
    import torch

    torch.set_num_threads(THREADS)
    from sentence_transformers import SparseEncoder

    if engine == "st-torch":
        return SparseEncoder(model_dir, device="cpu")
    return SparseEncoder(model_dir, device="cpu", backend="onnx",
                         model_kwargs={"provider": "CPUExecutionProvider"})


def worker(engine: str, model_dir: str, texts_file: str) -> None:
    """Runs in a fresh process: one engine, one text set (or the single-query loop)."""
    t0 = time.perf_counter()
    model = load(engine, model_dir)
    load_s = time.perf_counter() - t0
    if texts_file == "single-query":
        for _ in range(20):
            model.encode_query(QUERY)
        times = []
        for _ in range(CALLS):
            t = time.perf_counter()
            model.encode_query(QUERY)
            times.append(time.perf_counter() - t)
        mean = sum(times) / len(times)
        times.sort()
        print(json.dumps({"mean_ms": 1e3 * mean, "p50_ms": 1e3 * times[len(times) // 2],
                          "p99_ms": 1e3 * times[int(len(times) * 0.99)]}))
        return
    texts = Path(texts_file).read_text(encoding="utf-8").split("\n")[:-1]
    model.encode_document(texts[:BATCH], batch_size=BATCH)
    t0 = time.perf_counter()
    emb = model.encode_document(texts, batch_size=BATCH)
    secs = time.perf_counter() - t0
    stats = model.sparsity(emb)
    print(json.dumps({"texts_per_s": len(texts) / secs, "load_seconds": load_s,
                      "peak_rss_bytes": peak_rss(), "active_dims": float(stats["active_dims"])}))


def run(cmd: list[str], env: dict) -> dict:
    out = subprocess.run(cmd, env=env, capture_output=True, text=True)
    if out.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed:\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def cpu_flags() -> str:
    flags = set()
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("flags"):
            flags.update(line.split(":", 1)[1].split())
    wanted = ["avx2", "fma", "avx512f", "avx512_bf16", "avx512_vnni"]
    model = next((l.split(":", 1)[1].strip() for l in Path("/proc/cpuinfo").read_text().splitlines()
                  if l.startswith("model name")), "?")
    return f"{model}; " + " ".join(f for f in wanted if f in flags)


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rs-python", required=True)
    ap.add_argument("--st-python", required=True)
    ap.add_argument("--onnx-python")
    ap.add_argument("--splade", default=str(REPO / "target/release/splade"))
    ap.add_argument("--questions", type=int, default=2000)
    ap.add_argument("--passages", type=int, default=300)
    ap.add_argument("--worker", nargs=3, metavar=("ENGINE", "MODEL", "TEXTS"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.worker:
        worker(*args.worker)
        return 0

    env = dict(os.environ, OMP_NUM_THREADS=str(THREADS), MKL_NUM_THREADS=str(THREADS),
               RAYON_NUM_THREADS=str(THREADS), TOKENIZERS_PARALLELISM="false", HF_HUB_OFFLINE="1")
    subprocess.run([args.splade, "info"], env=env, check=True, capture_output=True)  # fetch splade-tiny
    tiny = Path(os.environ.get("SPLADE_RS_CACHE", Path.home() / ".cache" / "splade-rs")) / "models" / "splade-tiny"
    work = Path(tempfile.mkdtemp(prefix="splade-python-bench-"))
    model_dir = work / "splade-tiny"
    shutil.copytree(tiny, model_dir)  # the ONNX export writes next to the model: never into the cache
    engines = [("splade_rs", args.rs_python), ("st-torch", args.st_python)]
    if args.onnx_python:
        engines.append(("st-onnx", args.onnx_python))

    print(f"CPU: {cpu_flags()}; load average at start {os.getloadavg()[0]:.1f}", file=sys.stderr)
    sets = [("questions", quora_questions(args.questions)),
            ("passages", scifact_passages(args.passages, tiny / "tokenizer.json"))]
    rows = []
    for set_name, texts in sets:
        texts_file = work / f"{set_name}.txt"
        texts_file.write_text("".join(t + "\n" for t in texts), encoding="utf-8")
        for engine, python in engines:
            r = run([python, __file__, "--rs-python", "-", "--st-python", "-", "--worker", engine,
                     str(model_dir), str(texts_file)], env)
            r.update(engine=engine, set=f"{len(texts)} {set_name}", load_avg=os.getloadavg()[0])
            rows.append(r)
            print(json.dumps(r), file=sys.stderr, flush=True)
    single = {}
    for engine, python in engines:
        single[engine] = run([python, __file__, "--rs-python", "-", "--st-python", "-", "--worker", engine,
                              str(model_dir), "single-query"], env)
        print(engine, json.dumps(single[engine]), file=sys.stderr, flush=True)
    repeated = work / "query-x300.txt"
    repeated.write_text((QUERY + "\n") * CALLS, encoding="utf-8")
    rust = run([args.splade, "--threads", str(THREADS), "bench", "--model", str(model_dir),
                "--input", str(repeated), "--batch-size", "1", "--task", "query", "--per-text"], env)
    rust_p50_ms = rust["latency_us"]["p50"] / 1e3
    rust_mean_ms = rust["latency_us"]["mean"] / 1e3

    by = {(r["engine"], r["set"]): r for r in rows}
    print(f"CPU: {cpu_flags()}\n")
    print("| texts | engine | texts/s | vs ST torch | vs ST ONNX | peak RSS | active dims |")
    print("|---|---|---|---|---|---|---|")
    for set_name, texts in sets:
        key = f"{len(texts)} {set_name}"
        torch_tps = by[("st-torch", key)]["texts_per_s"]
        onnx = by.get(("st-onnx", key))
        for engine, _ in engines:
            r = by[(engine, key)]
            vs_onnx = f"{r['texts_per_s'] / onnx['texts_per_s']:.2f}x" if onnx else "-"
            print(f"| {key} | {engine} | {r['texts_per_s']:.1f} | {r['texts_per_s'] / torch_tps:.2f}x | {vs_onnx} | "
                  f"{r['peak_rss_bytes'] / 2**20:.0f} MB | {r['active_dims']:.1f} |")
    print("\n| one short query, `encode_query` | p50 | p99 | mean |")
    print("|---|---|---|---|")
    for engine, _ in engines:
        s = single[engine]
        print(f"| {engine} | {s['p50_ms']:.2f} ms | {s['p99_ms']:.2f} ms | {s['mean_ms']:.2f} ms |")
    print(f"| splade-rs library (`splade bench --task query --per-text`) | {rust_p50_ms:.2f} ms | "
          f"{rust['latency_us']['p99'] / 1e3:.2f} ms | {rust_mean_ms:.2f} ms |")
    print(f"\nsplade_rs Python overhead per call: {single['splade_rs']['p50_ms'] - rust_p50_ms:.3f} ms "
          "(p50 of the Python calls minus the library's p50 on the same query)")
    shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
