#!/usr/bin/env bash
# Scoring throughput with and without a flow retraining running beside it, side by side:
# alternates `threatflow demo` alone and `threatflow demo` while `threatflow train flow` runs
# at nice 19 (the trainer's priority), ROUNDS times each, and prints every run, the medians
# and their ratio, and how long each retraining took under load.
# Usage: bash loadtest/retrain_impact.sh [ROUNDS] [EVENTS]   (after cargo build --release)
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
rounds="${1:-3}"
events="${2:-100000}"
bin=target/release/threatflow
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
alone=()
beside=()
train_s=()
demo_eps() { "$bin" demo --events "$events" --json 2>/dev/null | tail -1 | python3 -c 'import json,sys; print(json.load(sys.stdin)["events_per_sec"])'; }
for round in $(seq "$rounds"); do
  alone+=("$(demo_eps)")
  start=$(date +%s.%N)
  nice -n 19 "$bin" train flow --model-dir "$work/m$round" --version r$round >/dev/null 2>&1 &
  trainer=$!
  beside+=("$(demo_eps)")
  wait "$trainer"
  train_s+=("$(python3 -c "print(round($(date +%s.%N) - $start, 1))")")
  echo "round $round: alone ${alone[-1]} ev/s, beside a retraining ${beside[-1]} ev/s, retraining ${train_s[-1]} s (wall, from start to end)"
done
python3 - "${alone[*]}" "${beside[*]}" "${train_s[*]}" <<'PY'
import statistics, sys
alone = [float(x) for x in sys.argv[1].split()]
beside = [float(x) for x in sys.argv[2].split()]
train = [float(x) for x in sys.argv[3].split()]
a, b = statistics.median(alone), statistics.median(beside)
print(f"median alone {a:.0f} ev/s, beside a retraining {b:.0f} ev/s, ratio {b / a:.3f}; retraining median {statistics.median(train):.1f} s")
PY
