#!/usr/bin/env bash
# Scoring throughput with and without a retraining running beside it, side by side:
# alternates `threatflow demo` alone and `threatflow demo` while `threatflow train OPERATOR`
# runs at nice 19 (the trainer's priority), ROUNDS times each, and prints every run, the
# medians and their ratio, and how long each retraining took under load. Alert, address and
# email trainings are shorter than a demo run, so they are repeated back to back until it ends
# (the worst case: retraining all the time).
# Usage: bash loadtest/retrain_impact.sh [ROUNDS] [EVENTS] [flow|alert|address|email]
#        (after cargo build --release)
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
rounds="${1:-3}"
events="${2:-100000}"
operator="${3:-flow}"
bin=target/release/threatflow
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
case "$operator" in
  flow) train_args=(train flow) ;;
  alert) "$bin" generate alerts --out "$work/alerts" >/dev/null
         train_args=(train alert --data "$work/alerts/train.jsonl") ;;
  email) "$bin" generate emails --out "$work/emails" >/dev/null
         train_args=(train email --data "$work/emails/train") ;;
  address) "$bin" generate addresses --out "$work/addresses" >/dev/null
         train_args=(train address --data "$work/addresses/train.jsonl") ;;
  *) echo "operator must be flow, alert, address or email" >&2; exit 2 ;;
esac
# One retraining (flow), or retrainings back to back until the file $work/stop appears; prints
# the median seconds of one.
retrain() {
  local round=$1 times=() n=0
  while :; do
    n=$((n + 1))
    local start; start=$(date +%s.%N)
    nice -n 19 "$bin" "${train_args[@]}" --model-dir "$work/m$round" --version "r$round-$n" >/dev/null 2>&1
    times+=("$(python3 -c "print($(date +%s.%N) - $start)")")
    rm -rf "$work/m$round"
    if [ "$operator" = flow ] || [ -e "$work/stop" ]; then break; fi
  done
  python3 -c "import statistics,sys; print(round(statistics.median(map(float, sys.argv[1:])), 2))" "${times[@]}"
}
alone=()
beside=()
train_s=()
demo_eps() { "$bin" demo --events "$events" --json 2>/dev/null | tail -1 | python3 -c 'import json,sys; print(json.load(sys.stdin)["events_per_sec"])'; }
for round in $(seq "$rounds"); do
  alone+=("$(demo_eps)")
  rm -f "$work/stop"
  retrain "$round" > "$work/train_s" &
  trainer=$!
  beside+=("$(demo_eps)")
  touch "$work/stop"
  wait "$trainer"
  train_s+=("$(cat "$work/train_s")")
  echo "round $round: alone ${alone[-1]} ev/s, beside retraining ${beside[-1]} ev/s, one retraining ${train_s[-1]} s (median wall time)"
done
python3 - "${alone[*]}" "${beside[*]}" "${train_s[*]}" <<'PY'
import statistics, sys
alone = [float(x) for x in sys.argv[1].split()]
beside = [float(x) for x in sys.argv[2].split()]
train = [float(x) for x in sys.argv[3].split()]
a, b = statistics.median(alone), statistics.median(beside)
print(f"median alone {a:.0f} ev/s, beside a retraining {b:.0f} ev/s, ratio {b / a:.3f}; retraining median {statistics.median(train):.1f} s")
PY
