#!/usr/bin/env bash
# Serving benchmarks of `splade serve` (BENCHMARKS.md, "Serving"), loopback only, bounded
# runs with wrk (Debian's `wrk`; `apt-get install wrk`).
#
#   bash scripts/bench/serve.sh [SECONDS_PER_RUN]
#
# Needs a release build (`cargo build --release -p splade-cli`) and ../shared/data. Prints
# the CPU, then one line per measurement.
set -euo pipefail
cd "$(dirname "$0")/../.."
SECS=${1:-10}
BIN=target/release/splade
DATA=../shared/data
WORK=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$WORK"' EXIT
command -v wrk >/dev/null || { echo "wrk is missing: apt-get install wrk" >&2; exit 1; }

echo "cpu: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs); cores: $(nproc)"
echo "flags: $(grep -m1 flags /proc/cpuinfo | tr ' ' '\n' | grep -E '^(avx2|fma|avx512f|avx512_vnni|avx512_bf16)$' | xargs)"

# Texts: 2,000 Quora questions (as the encoder benchmarks), SciFact for search.
awk -F'\t' 'NR > 1 && NR <= 2001 {print $1}' "$DATA/quora-pairs/train/pairs.tsv" > "$WORK/questions.txt"
python3 - "$WORK" "$DATA" <<'PY'
import json, sys
work, data = sys.argv[1], sys.argv[2]
qs = [l.rstrip("\n") for l in open(f"{work}/questions.txt")]
def lua(name, bodies, path, method="POST"):
    with open(f"{work}/{name}.lua", "w") as f:
        f.write("bodies = {\n")
        for b in bodies:
            f.write("  " + json.dumps(json.dumps(b)) + ",\n")
        f.write("}\ni = 0\n")
        f.write('wrk.method = "%s"\nwrk.headers["Content-Type"] = "application/json"\n' % method)
        f.write('request = function()\n  i = i %% #bodies + 1\n  return wrk.format(nil, "%s", nil, bodies[i])\nend\n' % path)
lua("embed", [{"inputs": q} for q in qs], "/embed_sparse")
lua("search_text", [{"query": q, "k": 10} for q in qs], "/search")
corpus = [json.loads(l) for l in open(f"{data}/scifact/corpus.jsonl")]
with open(f"{work}/corpus.jsonl", "w") as f:
    for d in corpus:
        f.write(json.dumps({"_id": d["_id"], "title": d.get("title", ""), "text": d["text"]}) + "\n")
lua("upsert", [[{"id": f"new-{i}", "text": corpus[i % len(corpus)]["text"][:300]}] for i in range(2000)], "/documents")
PY

start_server() { # ARGS... ; sets PID and URL
  "$BIN" serve --port 0 "$@" 2> "$WORK/server.log" &
  PID=$!
  for _ in $(seq 600); do
    URL=$(grep -o 'http://[0-9.:]*' "$WORK/server.log" || true)
    [ -n "$URL" ] && break
    sleep 0.1
  done
}
stop_server() { kill "$PID"; wait "$PID" 2>/dev/null || true; }
peak_rss_mb() { echo $(( $(grep VmHWM /proc/$PID/status | awk '{print $2}') / 1024 )); }
run_wrk() { # NAME CONNECTIONS SCRIPT
  local out
  out=$(wrk -t "$(( $2 < 2 ? 1 : 2 ))" -c "$2" -d "${SECS}s" --latency -s "$WORK/$3.lua" "$URL")
  local rps p50 p99 non2xx errors total
  rps=$(echo "$out" | awk '/Requests\/sec/ {print $2}')
  p50=$(echo "$out" | awk '$1=="50%" {print $2}')
  p99=$(echo "$out" | awk '$1=="99%" {print $2}')
  non2xx=$(echo "$out" | awk '/Non-2xx/ {print $NF}')
  errors=$(echo "$out" | grep 'Socket errors' || true)
  total=$(echo "$out" | awk '/requests in/ {print $1}')
  echo "$1: connections $2, requests/s $rps, p50 $p50, p99 $p99, requests $total, non-2xx ${non2xx:-0} $errors"
}

echo "== offline: splade bench on the same 2,000 questions (2 threads, batch 32)"
"$BIN" --threads 2 bench --model splade-tiny --input "$WORK/questions.txt" --batch-size 32 2>/dev/null

echo "== /embed_sparse, one question per request"
start_server --model splade-tiny
run_wrk "embed c=1" 1 embed
run_wrk "embed c=8" 8 embed
run_wrk "embed c=64 (saturation)" 64 embed
echo "peak RSS: $(peak_rss_mb) MB"
stop_server

if [ -n "${TEI_BIN:-}" ]; then
  # The peer: text-embeddings-inference built from its public source (candle CPU backend,
  # HTTP), same model folder, f32, same texts and load. TEI_BIN=path/to/text-embeddings-router.
  MODEL_DIR=${MODEL_DIR:-$HOME/.cache/splade-rs/models/splade-tiny}
  echo "== TEI $("$TEI_BIN" --version 2>/dev/null) on the same model ($MODEL_DIR), --dtype float32"
  TEI_PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
  HF_HUB_OFFLINE=1 RAYON_NUM_THREADS=2 "$TEI_BIN" --model-id "$MODEL_DIR" --pooling splade --dtype float32 \
    --hostname 127.0.0.1 --port "$TEI_PORT" > "$WORK/tei.log" 2>&1 &
  PID=$!
  URL="http://127.0.0.1:$TEI_PORT"
  for _ in $(seq 600); do curl -sf "$URL/health" > /dev/null && break; sleep 0.1; done
  grep -o 'max_batch_requests=[0-9]*' "$WORK/tei.log" | head -1 || true
  run_wrk "TEI embed c=1" 1 embed
  run_wrk "TEI embed c=8" 8 embed
  run_wrk "TEI embed c=64 (saturation)" 64 embed
  echo "TEI peak RSS: $(peak_rss_mb) MB"
  stop_server
  HF_HUB_OFFLINE=1 RAYON_NUM_THREADS=2 "$TEI_BIN" --model-id "$MODEL_DIR" --pooling splade --dtype float32 \
    --hostname 127.0.0.1 --port "$TEI_PORT" --max-concurrent-requests 32 > "$WORK/tei.log" 2>&1 &
  PID=$!
  for _ in $(seq 600); do curl -sf "$URL/health" > /dev/null && break; sleep 0.1; done
  run_wrk "TEI overload c=64" 64 embed
  stop_server
fi

echo "== 2x overload: --max-concurrent-requests 32, 64 connections"
start_server --model splade-tiny --max-concurrent-requests 32
run_wrk "overload c=64" 64 embed
echo "peak RSS: $(peak_rss_mb) MB"
stop_server

echo "== /search on SciFact (5,183 documents)"
"$BIN" --threads 2 index build --model splade-tiny --corpus "$WORK/corpus.jsonl" --out "$WORK/index" 2>/dev/null
"$BIN" --threads 2 encode --model splade-tiny --query --input "$WORK/questions.txt" > "$WORK/qvec.raw" 2>/dev/null
python3 - "$WORK" <<'PY'
import json, sys
work = sys.argv[1]
rows = [json.loads(l) for l in open(f"{work}/qvec.raw")]
with open(f"{work}/qvec.jsonl", "w") as f:
    for i, r in enumerate(rows):
        f.write(json.dumps({"id": f"q{i}", "indices": r["indices"], "values": r["values"]}) + "\n")
with open(f"{work}/search_vector.lua", "w") as f:
    f.write("bodies = {\n")
    for r in rows:
        f.write("  " + json.dumps(json.dumps({"query": {"indices": r["indices"], "values": r["values"]}, "k": 10})) + ",\n")
    f.write('}\ni = 0\nwrk.method = "POST"\nwrk.headers["Content-Type"] = "application/json"\n')
    f.write('request = function()\n  i = i % #bodies + 1\n  return wrk.format(nil, "/search", nil, bodies[i])\nend\n')
PY
t0=$(date +%s.%N)
"$BIN" --threads 2 search --index "$WORK/index" --query-vectors "$WORK/qvec.jsonl" --k 10 > /dev/null
t1=$(date +%s.%N)
echo "in-process (splade search --query-vectors, 2,000 queries, process start and index open included): $(python3 -c "print(round(2000/($t1-$t0)))") queries/s"
start_server --model splade-tiny --index "$WORK/index"
run_wrk "search vectors c=8" 8 search_vector
run_wrk "search texts c=8" 8 search_text
wrk -t 1 -c 4 -d "${SECS}s" -s "$WORK/upsert.lua" "$URL" > "$WORK/upserts.txt" &
UPS=$!
run_wrk "search vectors c=8 during upserts" 8 search_vector
wait $UPS || true
echo "upserts meanwhile: $(awk '/Requests\/sec/ {print $2}' "$WORK/upserts.txt") requests/s (one document each, 4 connections)"
echo "index after: $(curl -s "$URL/info" | python3 -c 'import json,sys; print(json.load(sys.stdin)["splade"]["index"])')"
stop_server
