#!/usr/bin/env bash
# Throughput of the pipeline (passthrough operator) on the embedded mock broker and on a real
# Tansu broker: three runs each, medians printed. Usage: loadtest/run.sh [EVENTS]
set -euo pipefail
repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$repo_root"
events="${1:-200000}"
bash scripts/setup.sh >/dev/null
cargo build --release -p threatflow --quiet
binary=./target/release/threatflow
port=$((20000 + RANDOM % 20000))
.tools/bin/tansu broker --listener-url "tcp://127.0.0.1:$port" \
  --advertised-listener-url "tcp://127.0.0.1:$port" --storage-engine memory://tansu/ \
  >/dev/null 2>&1 &
tansu_pid=$!
trap 'kill $tansu_pid 2>/dev/null || true' EXIT
sleep 2

median() { sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
for target in mock tansu; do
  results=()
  for run in 1 2 3; do
    if [ "$target" = mock ]; then
      line=$(RUST_LOG=error "$binary" demo --events "$events" --json 2>/dev/null | tail -1)
    else
      line=$(RUST_LOG=error "$binary" demo --events "$events" --brokers "127.0.0.1:$port" --json 2>/dev/null | tail -1)
    fi
    echo "$target run $run: $line"
    results+=("$line")
  done
  for key in events_per_sec latency_p50_ms latency_p99_ms; do
    value=$(printf '%s\n' "${results[@]}" | python3 -c "import json,sys; [print(json.loads(l)['$key']) for l in sys.stdin]" | median)
    echo "$target median $key: $value"
  done
done
