#!/bin/bash
# Issue #17 deliverable 6: one table per collection with every peer, measured in one run on a
# quiet machine (2 cores, nothing else running), with the CPU flags and the load per row.
#
#   scripts/bench/issue17_tables.sh OUT_DIR [PARTS]
#   scripts/bench/avx2_only.sh scripts/bench/issue17_tables.sh OUT_DIR [PARTS]   (as on an AVX2-only CPU)
#
# PARTS (default all): a comma list of encoders, flat1m, syn200k, long150k (long documents),
# glosses, quora, webq (web queries), scifact, msm, and the small real collections cacm, cisi,
# cran (Cranfield), dbp (DBpedia-Entity subset), clim (Climate-FEVER sentences); and paired
# (not in the default): exact search against splade-index on the seven small sets in 5 paired
# rounds (paired_exact.py: our one-thread QPS against its one-thread batch call, both 2-thread
# batches; median and range of the per-round ratios), in OUT_DIR/paired (with the SETq1k query
# files the set parts make, where they exist).
#
# Needs (see BENCHMARKS.md for each):
#   /work/venv-search  numpy scipy numba splade-index==0.2.0 pyseismic-lsr==0.5.4 bmp==0.2.8
#                      (pulls torch and sentence-transformers 6.x: the ST torch column)
#   /work/venv-onnx    sentence-transformers 5.1 + optimum-onnx[onnxruntime] + transformers 4.57
#   target/release/splade (cargo build --release -p splade-cli)
#   /tmp/flat1m, /tmp/syn200k        scripts/bench/make_synthetic.py (commands in issue17_rerun.sh)
#   /tmp/long150k                    long documents: make_synthetic.py --docs 150000 --queries 1000
#                                    --doc-terms 600 --query-terms 40 --seed 13 --out /tmp/long150k
#                                    (391 distinct terms a document)
#   /tmp/seismic-flat1m/index*       Seismic's saved flat 1M index (seismic_saved.py builds it the
#                                    first time: about 8 minutes, 7.6 GB of memory)
#   /tmp/glosses.vec.jsonl, /tmp/webq.vec.jsonl, and in /tmp/d6/vec: SET.vec.jsonl and
#   SETq.vec.jsonl for SET in scifact msm cacm cisi cran dbp clim (splade-tiny vectors:
#   `splade encode --document/--query --id-field _id --jsonl-field text` of the corpus.jsonl and
#   queries.jsonl of ../shared/data/{wordnet-glosses,scifact,mini-msmarco-dl19,cacm,cisi,
#   cranfield,mini-dbpedia-entity,climate-fever-sentences}); a set of fewer than 1,000 queries
#   is searched as its queries repeated up to 1,000 (SETq1k.vec.jsonl, made here), so that each
#   engine's timed pass is long enough to measure
#   /work/quora/{corpus,queries}.vec.jsonl  scripts/bench/make_quora.py, then the two encode
#                                    commands in its help (536,627 Quora questions, 1,000 held out)
#   /work/webq/{corpus,queries}.vec.jsonl   scripts/bench/make_webq.py, then the two encode
#                                    commands in its help (192,135 web queries, 1,000 held out)
set -euo pipefail
out=${1:?OUT_DIR}
parts=${2:-encoders,flat1m,syn200k,long150k,glosses,quora,webq,scifact,msm,cacm,cisi,cran,dbp,clim}
mkdir -p "$out"
py=/work/venv-search/bin/python
vec=/tmp/d6/vec
want() { [[ ",$parts," == *",$1,"* ]]; }
stamp() { echo "$(date -u +%FT%TZ) load $(cut -d' ' -f1-3 /proc/loadavg) $*" | tee -a "$out/log.txt"; }
grep -m1 '^flags' /proc/cpuinfo | tr ' ' '\n' | grep -E '^(avx2|fma|avx512f|avx512bw|avx512_vnni|avx_vnni|amx_int8)$' |
  tr '\n' ' ' > "$out/cpu_flags.txt"
. "$(dirname "$0")/cpu.sh"
cpu_model >> "$out/cpu_flags.txt"
if [[ "${AVX2_ONLY:-}" == 1 ]]; then  # started through scripts/bench/avx2_only.sh
  echo "(hardware flags; every process of this run sees avx2 fma only: avx2_only.sh)" >> "$out/cpu_flags.txt"
  enc_mode=--avx2-only  # the ONNX int8 export for AVX2, and the kernels each process took, per row
fi
stamp "start; CPU: $(cat "$out/cpu_flags.txt")"
bin=$(cargo bench -p splade-index --bench bench_index --no-run --message-format=json 2>/dev/null |
  $py -c "import json,sys; print([m['executable'] for m in map(json.loads, sys.stdin) if m.get('reason')=='compiler-artifact' and m['target']['name']=='bench_index' and m.get('executable')][0])")

if want encoders; then
  stamp encoders
  HF_HUB_OFFLINE=1 /work/venv-onnx/bin/python scripts/bench/int8_encoders.py --st-python $py ${enc_mode:-} \
    > "$out/encoders.md" 2> "$out/encoders.log"
fi
idx() {  # name docs queries extra compare_indexes args...
  local name=$1 docs=$2 queries=$3; shift 3
  stamp "$name"
  HF_HUB_OFFLINE=1 $py scripts/bench/compare_indexes.py --docs "$docs" --queries "$queries" \
    --bench-bin "$bin" --timeout 1800 --out "$out/$name.json" "$@" 2> "$out/$name.log"
  $py scripts/bench/compare_indexes.py --render "$out/$name.json" > "$out/$name.md"
}
if want flat1m; then
  # Seismic from its saved index (its build is timed by the run that saved it).
  idx flat1m /tmp/flat1m/docs.bin /tmp/flat1m/q200.jsonl --systems baseline,splade-rs,splade-index,bmp \
    --rs-grid 0.9:0.8,0.9:1,0.7:1 --bmp-grid 1:1,0.9:1
  stamp flat1m-seismic
  mkdir -p /tmp/seismic-flat1m
  $py scripts/bench/seismic_saved.py --docs /tmp/flat1m/docs.bin --queries /tmp/flat1m/q200.jsonl \
    --index /tmp/seismic-flat1m/index --postings 3500 --grid 10:0.9,20:0.9,30:0.8,40:0.9,40:1 \
    --out "$out/flat1m-seismic.json" > /dev/null 2> "$out/flat1m-seismic.log"
fi
if want syn200k; then
  idx syn200k /tmp/syn200k/docs.bin /tmp/syn200k/queries.jsonl --systems baseline,splade-rs,splade-index,bmp,seismic \
    --rs-grid 0.9:0.8,0.9:1,0.8:1 --bmp-grid 1:1,0.9:1 --seismic-postings 3500 --seismic-grid 10:0.9,20:0.9,30:0.8,40:1
fi
if want long150k; then
  idx long150k /tmp/long150k/docs.bin /tmp/long150k/queries.jsonl --systems baseline,splade-rs,splade-index,bmp,seismic \
    --rs-grid 0.9:0.8,0.9:1,0.8:1 --bmp-grid 1:1,0.9:1 --seismic-postings 3500 --seismic-grid 10:0.9,20:0.9,30:0.8,40:1
fi
if want glosses; then
  idx glosses /tmp/glosses.vec.jsonl /tmp/webq.vec.jsonl --systems baseline,splade-rs,splade-index,bmp,seismic \
    --rs-grid 0.95:1,0.9:1,0.9:0.8 --bmp-grid 1:1,0.95:1,0.9:1 --seismic-postings 5000 \
    --seismic-grid 10:0.9,15:0.8,20:0.8,20:0.7,30:0.6
fi
if want quora; then
  idx quora /work/quora/corpus.vec.jsonl /work/quora/queries.vec.jsonl --systems baseline,splade-rs,splade-index,bmp,seismic \
    --rs-grid 0.95:1,0.9:1,0.9:0.8 --bmp-grid 1:1,0.95:1,0.9:1 --seismic-postings 5000 \
    --seismic-grid 10:0.9,15:0.8,15:0.7,20:0.9,20:0.8,20:0.7,30:0.6
fi
if want webq; then
  idx webq /work/webq/corpus.vec.jsonl /work/webq/queries.vec.jsonl --systems baseline,splade-rs,splade-index,bmp,seismic \
    --rs-grid 0.95:1,0.9:1,0.9:0.8 --bmp-grid 1:1,0.95:1,0.9:1 --seismic-postings 5000 \
    --seismic-grid 10:0.9,15:0.8,15:0.7,20:0.9,20:0.8,20:0.7,30:0.6
fi
for set in scifact msm cacm cisi cran dbp clim; do
  if want $set; then
    queries=$vec/${set}q.vec.jsonl
    if [ "$(wc -l < "$queries")" -lt 1000 ]; then
      # The queries repeated (ids made unique) up to at least 1,000.
      $py - "$queries" "$vec/${set}q1k.vec.jsonl" <<'EOF'
import json, sys
qs = [json.loads(line) for line in open(sys.argv[1])]
with open(sys.argv[2], "w") as f:
    for r in range(-(-1000 // len(qs))):
        for q in qs:
            f.write(json.dumps(dict(q, id=f"{q['id']}#{r}")) + "\n")
EOF
      queries=$vec/${set}q1k.vec.jsonl
    fi
    idx $set $vec/$set.vec.jsonl "$queries" --systems baseline,splade-rs,splade-index,bmp,seismic \
      --rs-grid 0.95:1,0.9:1,0.9:0.8 --bmp-grid 1:1,0.95:1,0.9:1 --seismic-postings 1000 \
      --seismic-grid 10:0.9,20:0.9,20:0.7,40:1
  fi
done
if want paired; then
  stamp paired
  $py scripts/bench/paired_exact.py --rounds 5 --vec "$vec" --bench-bin "$bin" --out "$out/paired" \
    scifact msm cacm cisi cran dbp clim > /dev/null 2> "$out/paired.log"
fi
stamp end
