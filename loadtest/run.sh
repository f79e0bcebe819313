#!/usr/bin/env bash
# The load-test set of BENCHMARKS.md ("Load test"): release build, Tansu started by the tool,
# every figure a median of 3 alternating rounds with its baselines from the same run.
# Usage: loadtest/run.sh [OUT_DIR=target/loadtest]
set -euo pipefail
repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$repo_root"
out="${1:-target/loadtest}"
mkdir -p "$out"
bash scripts/setup.sh >/dev/null
cargo build --release -p threatflow-loadtest --quiet
lt=target/release/threatflow-loadtest
tansu=.tools/bin/tansu
kdd=models/flow/data/KDDTest+.txt
run() {
  name=$1; shift
  echo "== $name: $*"
  "$lt" --json --out "$out/$name.json" --plot "$out/$name.png" "$@" | tail -1
}
run flow-flat --tansu $tansu --mix flow=1 --flows $kdd --events 60000 \
  --baseline passthrough --baseline raw --repeat 3
run alert-flat --tansu $tansu --mix alert=1 --events 30000 --baseline passthrough --repeat 3
run flow-half --tansu $tansu --mix flow=1 --flows $kdd --events 40000 --rate half \
  --baseline passthrough --repeat 3
run passthrough-scale --tansu $tansu --operators passthrough --events 60000 \
  --baseline scale-out --baseline raw --repeat 3
run mix-scale --tansu $tansu --events 20000 --baseline scale-out --baseline passthrough --repeat 3
run embedded --events 60000 --operators passthrough --baseline raw --repeat 3
