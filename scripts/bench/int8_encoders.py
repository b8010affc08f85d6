#!/usr/bin/env python3
"""int8 inference throughput (issue #17): sentence-transformers torch / ONNX f32 / ONNX int8
against splade-rs f32 (screened projection, default), f32 with its AVX2 kernels forced
(SPLADE_F32_KERNEL=avx2; the gemm crate's dense products still pick the CPU's widest), f32
unscreened, int8, and int8 with the AVX2 kernel forced (SPLADE_INT8_KERNEL=avx2), same texts, 2 threads, batch 32, each
measurement in its own process (load, one untimed batch, then every text timed).

  HF_HUB_OFFLINE=1 /work/venv-onnx/bin/python scripts/bench/int8_encoders.py \\
      --st-python /work/venv-ref/bin/python [--rows tiny-questions,tiny-passages,base-passages]

`--avx2 --splade BIN` measures what this CPU gives with AVX-512 left unused wherever it can be
turned off: BIN is a splade built without the gemm crate's AVX-512 kernels
(scripts/bench/build_avx2_splade.sh) and runs with SPLADE_F32_KERNEL=avx2 and
SPLADE_INT8_KERNEL=avx2, so every product is AVX2/FMA; ST torch runs with
ATEN_CPU_CAPABILITY=avx2, MKL_ENABLE_INSTRUCTIONS=AVX2 and ONEDNN_MAX_CPU_ISA=AVX2 (the
capability torch reports is recorded); onnxruntime has no such switch (MLAS picks its kernels from
CPUID), so the ONNX columns keep AVX-512 and VNNI, which favours them; the int8 export uses the
"avx2" config, as the issue's AVX2 table does.

`--avx2-only` is the fair form of that: every process of the run (ST torch, ST ONNX, splade-rs)
is started through scripts/bench/avx2_only.sh, which answers each CPUID with AVX-512, AVX-VNNI,
AVX10 and AMX cleared, so every engine's own dispatch, onnxruntime's included, takes the kernels
it takes on an AVX2/FMA-only CPU (recorded per row: torch's capability, our f32 and int8
kernels). No special build and no kernel variables; the int8 export uses the "avx2" config.

The ONNX rows need sentence-transformers 5.1 + optimum-onnx + onnxruntime (this script's own
Python); ST torch runs in --st-python (sentence-transformers 6.2). ONNX int8 is
`export_dynamic_quantized_onnx_model(model, --onnx-config, ...)`. Text sets and the random
distilbert-base-size model are compare_encoders.py's (it generates the model once).
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
from compare_encoders import BENCH, CACHE, make_random_distilbert, peak_rss, quora_questions, scifact_passages  # noqa: E402

THREADS = 2
BATCH = 32


def worker(engine: str, model_dir: str, texts_file: str, onnx_file: str) -> None:
    import torch

    torch.set_num_threads(THREADS)
    capability = torch.backends.cpu.get_cpu_capability()
    from sentence_transformers import SparseEncoder

    texts = Path(texts_file).read_text(encoding="utf-8").split("\n")[:-1]
    t0 = time.perf_counter()
    if engine == "st-torch":
        model = SparseEncoder(model_dir, device="cpu")
    else:
        kw = {"provider": "CPUExecutionProvider"}
        if engine == "st-onnx-int8":
            kw["file_name"] = onnx_file
        model = SparseEncoder(model_dir, device="cpu", backend="onnx", model_kwargs=kw)
    load = time.perf_counter() - t0
    model.encode(texts[:BATCH], batch_size=BATCH)
    t0 = time.perf_counter()
    emb = model.encode(texts, batch_size=BATCH)
    secs = time.perf_counter() - t0
    print(json.dumps({"texts_per_s": len(texts) / secs, "load_seconds": load,
                      "peak_rss_bytes": peak_rss(), "cpu_capability": capability,
                      "active_dims": float(model.sparsity(emb)["active_dims"])}))


AVX2_ONLY = str(Path(__file__).resolve().parent / "avx2_only.sh")


def run(cmd: list[str], env: dict, avx2_only: bool = False) -> dict:
    if avx2_only:
        cmd = [AVX2_ONLY, *cmd]
    out = subprocess.run(cmd, env=env, capture_output=True, text=True)
    if out.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed:\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def to_st51_layout(model_dir: Path) -> None:
    """Rewrites a folder saved by sentence-transformers 6.x (module paths under
    `sparse_encoder.modules`, `transformer_task` in sentence_bert_config.json,
    `embedding_dimension` in the pooling config) into the 5.x layout, which the ONNX venv's
    sentence-transformers 5.1 loads; sentence-transformers 6.2 and splade-rs load both."""
    if not (model_dir / "modules.json").is_file():
        return
    modules = json.loads((model_dir / "modules.json").read_text())
    renames = {
        "sentence_transformers.sparse_encoder.modules.mlm_transformer.MLMTransformer":
            "sentence_transformers.sparse_encoder.models.MLMTransformer",
        "sentence_transformers.sparse_encoder.modules.splade_pooling.SpladePooling":
            "sentence_transformers.sparse_encoder.models.SpladePooling",
    }
    if not any(m["type"] in renames for m in modules):
        return
    for m in modules:
        m["type"] = renames.get(m["type"], m["type"])
        if m["type"].endswith("SpladePooling"):
            cfg_path = model_dir / m["path"] / "config.json"
            cfg = json.loads(cfg_path.read_text())
            cfg["word_embedding_dimension"] = cfg.pop("embedding_dimension", None)
            cfg_path.write_text(json.dumps(cfg, indent=2))
    (model_dir / "modules.json").write_text(json.dumps(modules, indent=2))
    sbc = json.loads((model_dir / "sentence_bert_config.json").read_text())
    max_len = sbc.get("max_seq_length") or json.loads(
        (model_dir / "tokenizer_config.json").read_text()).get("model_max_length")
    (model_dir / "sentence_bert_config.json").write_text(
        json.dumps({"max_seq_length": max_len, "do_lower_case": False}, indent=2))


def prepare_onnx(model_dir: Path, config: str) -> str:
    """Exports ONNX f32 and the dynamic int8 model into model_dir (a copy); returns the int8 file."""
    from sentence_transformers import SparseEncoder, export_dynamic_quantized_onnx_model

    m = SparseEncoder(str(model_dir), device="cpu", backend="onnx",
                      model_kwargs={"provider": "CPUExecutionProvider"})
    m.save_pretrained(str(model_dir))
    export_dynamic_quantized_onnx_model(m, config, str(model_dir))
    # "model_qint8_avx512_vnni.onnx", but "model_quint8_avx2.onnx" (unsigned activations).
    found = sorted((model_dir / "onnx").glob(f"model_q*int8_{config}.onnx"))
    if len(found) != 1:
        raise SystemExit(f"the int8 export for {config}: expected one file, found {found}")
    return f"onnx/{found[0].name}"


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--st-python", default=sys.executable)
    ap.add_argument("--splade", default=str(REPO / "target/release/splade"))
    ap.add_argument("--rows", default="tiny-questions,tiny-passages,base-passages")
    ap.add_argument("--onnx-config", default="avx512_vnni")
    ap.add_argument("--avx2", action="store_true",
                    help="AVX2 everywhere it can be forced (see the module docs); --splade names the AVX2 build")
    ap.add_argument("--avx2-only", action="store_true",
                    help="every process sees an AVX2/FMA-only CPU (scripts/bench/avx2_only.sh)")
    ap.add_argument("--scale", type=float, default=1.0, help="fraction of the texts (a smoke run)")
    ap.add_argument("--worker", nargs=4, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.worker:
        worker(*args.worker)
        return 0
    env = dict(os.environ, OMP_NUM_THREADS=str(THREADS), MKL_NUM_THREADS=str(THREADS),
               RAYON_NUM_THREADS=str(THREADS), TOKENIZERS_PARALLELISM="false", HF_HUB_OFFLINE="1")
    if args.avx2_only and args.avx2:
        raise SystemExit("--avx2-only and --avx2 are two ways of the same thing: pick one")
    subprocess.run([args.splade, "info"], env=env, check=True, capture_output=True)
    if args.avx2_only:
        check = subprocess.run([AVX2_ONLY, "--check"], capture_output=True, text=True, check=True).stdout
        print(f"avx2_only.sh --check: {check.strip()}", file=sys.stderr)
        if "avx512f False" not in check or "avx2 True" not in check:
            raise SystemExit(f"avx2_only.sh did not hide AVX-512: {check}")
    tiny = CACHE / "models" / "splade-tiny"
    work = Path(tempfile.mkdtemp(prefix="splade-int8-bench-"))
    rows_wanted = args.rows.split(",")
    plan = [("tiny-questions", "splade-tiny", tiny, "questions", 2000),
            ("tiny-passages", "splade-tiny", tiny, "passages", 300),
            ("base-passages", "distilbert-base-rnd", BENCH / "distilbert-base-rnd", "passages", 100)]
    flags = sorted({f for line in Path("/proc/cpuinfo").read_text().splitlines() if line.startswith("flags")
                    for f in line.split(":", 1)[1].split() if f in ("avx2", "fma", "avx512f", "avx512_vnni")})
    if args.avx2_only:
        flags = [f"{' '.join(flags)} (hardware; processes see avx2 fma only)"]
    print(f"CPU flags: {' '.join(flags)}; load average at start {os.getloadavg()}", file=sys.stderr)
    prepared: dict[str, tuple[Path, str]] = {}
    results = []
    for row, name, src, set_name, n in plan:
        if row not in rows_wanted:
            continue
        if name not in prepared:
            if name == "distilbert-base-rnd":
                make_random_distilbert(src)
            copy = work / name
            shutil.copytree(src, copy)
            to_st51_layout(copy)
            config = "avx2" if args.avx2 or args.avx2_only else args.onnx_config
            prepared[name] = (copy, prepare_onnx(copy, config))
        model_dir, onnx_file = prepared[name]
        n = max(BATCH, int(n * args.scale))
        texts = quora_questions(n) if set_name == "questions" else scifact_passages(n, tiny / "tokenizer.json")
        texts_file = work / f"{set_name}-{n}.txt"
        texts_file.write_text("".join(t + "\n" for t in texts), encoding="utf-8")
        out = {"row": row, "model": name, "texts": f"{len(texts)} {set_name}"}
        py = {"st-torch": args.st_python, "st-onnx-f32": sys.executable, "st-onnx-int8": sys.executable}
        torch_env = dict(env, ATEN_CPU_CAPABILITY="avx2", MKL_ENABLE_INSTRUCTIONS="AVX2",
                         ONEDNN_MAX_CPU_ISA="AVX2") if args.avx2 else env
        for engine in ("st-torch", "st-onnx-f32", "st-onnx-int8"):
            r = run([py[engine], __file__, "--worker", engine, str(model_dir), str(texts_file), onnx_file],
                    torch_env if engine == "st-torch" else env, args.avx2_only)
            out[engine] = r["texts_per_s"]
            out[f"{engine}_load"] = os.getloadavg()[0]
            if engine == "st-torch" or args.avx2_only:  # torch's kernels (what the worker's torch sees)
                out[f"{engine}_capability"] = r["cpu_capability"]
        rs = {"rs-f32": ([], {}), "rs-f32-avx2": ([], {"SPLADE_F32_KERNEL": "avx2"}),
              "rs-f32-unscreened": (["--no-screened-projection"], {}),
              "rs-int8": (["--quantize", "int8"], {}),
              "rs-int8-avx2": (["--quantize", "int8"], {"SPLADE_INT8_KERNEL": "avx2"})}
        if args.avx2:
            avx2 = {"SPLADE_F32_KERNEL": "avx2", "SPLADE_INT8_KERNEL": "avx2"}
            rs = {"rs-f32": ([], avx2), "rs-f32-unscreened": (["--no-screened-projection"], avx2),
                  "rs-int8": (["--quantize", "int8"], avx2)}
        if args.avx2_only:  # nothing forced: the masked CPUID decides, as on an AVX2 machine
            rs = {"rs-f32": ([], {}), "rs-f32-unscreened": (["--no-screened-projection"], {}),
                  "rs-int8": (["--quantize", "int8"], {})}
        for engine, (extra, more_env) in rs.items():
            r = run([args.splade, "--threads", str(THREADS), "bench", "--model", str(model_dir),
                     "--input", str(texts_file), "--batch-size", str(BATCH), *extra], dict(env, **more_env),
                    args.avx2_only)
            out[f"{engine}_kernels"] = f"{r.get('f32_kernel')}/{r.get('int8_kernel')}"
            out[engine] = r["texts_per_s"]
            out[f"{engine}_load"] = os.getloadavg()[0]
            if r.get("screen"):
                out[f"{engine}_exact_fraction"] = r["screen"]["exact_fraction"]
        results.append(out)
        print(json.dumps(out), file=sys.stderr, flush=True)
    cols = ["st-torch", "st-onnx-f32", "st-onnx-int8", "rs-f32", "rs-f32-avx2", "rs-f32-unscreened", "rs-int8",
            "rs-int8-avx2"]
    if args.avx2 or args.avx2_only:
        cols = ["st-torch", "st-onnx-f32", "st-onnx-int8", "rs-f32", "rs-f32-unscreened", "rs-int8"]
    ratios = [("rs-f32", "st-torch"), ("rs-f32", "st-onnx-f32"), ("rs-int8", "st-torch"), ("rs-int8", "st-onnx-int8")]
    print("| model | texts | " + " | ".join(cols) + " | " + " | ".join(f"{a} / {b}" for a, b in ratios) + " |")
    print("|---|---|" + "---|" * (len(cols) + len(ratios)))
    for r in results:
        print(f"| {r['model']} | {r['texts']} | " + " | ".join(f"{r[c]:.2f}" for c in cols)
              + " | " + " | ".join(f"{r[a] / r[b]:.2f}x" for a, b in ratios) + " |")
    print(json.dumps(results))
    shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
