#!/usr/bin/env bash
# Latency of the synchronous prompt scan (POST /v1/scan/prompt) at half of its measured
# maximum request rate, side by side with the stream's own latency for the same short prompts
# at the same rate, on one engine: a fresh Tansu broker, the engine scoring a `prompts` topic
# with the shipped prompt model (rules + MiniLM int8 on ONNX Runtime, CPU), then
# `threatflow-api-load` (tests/src/bin/api_load.rs). RUNS rounds; one JSON line per round.
#
#   bash loadtest/api_scan.sh [RUNS=3] [SECONDS=15] [CONNECTIONS=16]
#
# Needs target/release/threatflow and target/release/threatflow-api-load
# (cargo build --release -p threatflow -p threatflow-e2e --bin threatflow --bin threatflow-api-load),
# .tools/bin/tansu and .tools/lib/libonnxruntime.so (scripts/setup.sh).
set -euo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
tansu="${TANSU_BIN:-$repo/.tools/bin/tansu}"
engine="$repo/target/release/threatflow"
load="$repo/target/release/threatflow-api-load"
runs="${1:-3}"
seconds="${2:-15}"
connections="${3:-16}"
export ORT_DYLIB_PATH="${ORT_DYLIB_PATH:-$repo/.tools/lib/libonnxruntime.so}"
for round in $(seq 1 "$runs"); do
  work="$(mktemp -d)"
  port=$((20000 + RANDOM % 20000))
  http_port=$((40000 + RANDOM % 20000))
  "$tansu" broker --listener-url "tcp://127.0.0.1:$port" --advertised-listener-url "tcp://127.0.0.1:$port" \
    --storage-engine memory://tansu/ >/dev/null 2>&1 &
  broker=$!
  sleep 2
  for topic in prompts scored.prompts dlq; do
    "$tansu" topic create --broker "tcp://127.0.0.1:$port" --partitions 1 "$topic" >/dev/null 2>&1
  done
  cat > "$work/engine.toml" <<CONFIG
[kafka]
brokers = "127.0.0.1:$port"
group_id = "api-scan-$RANDOM"
[[bindings]]
topic = "prompts"
schema = "prompt"
operator = "prompt"
output_topic = "scored.prompts"
[output]
dead_letter_topic = "dlq"
[storage]
state_dir = "$work/state"
model_dir = "$repo/models"
[http]
bind = "127.0.0.1:$http_port"
[http.api]
max_in_flight = 256
[pipeline]
linger_ms = 2
CONFIG
  RUST_LOG=warn "$engine" run --config "$work/engine.toml" > "$work/engine.log" 2>&1 &
  engine_pid=$!
  for _ in $(seq 1 300); do
    if curl -sf "http://127.0.0.1:$http_port/ready" >/dev/null; then break; fi
    sleep 0.1
  done
  "$load" --http "127.0.0.1:$http_port" --brokers "127.0.0.1:$port" --input-topic prompts \
    --output-topic scored.prompts --connections "$connections" --seconds "$seconds"
  kill "$engine_pid" "$broker" 2>/dev/null || true
  wait "$engine_pid" "$broker" 2>/dev/null || true
  rm -rf "$work"
done
