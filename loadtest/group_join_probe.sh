#!/usr/bin/env bash
# Measures how long the engine takes from subscribing to holding its partitions on a fresh
# Tansu broker, three starts in a row (each after a kill -9 of the previous one), for one
# session timeout / heartbeat pair and static or dynamic membership. Prints one line per start.
#
#   bash loadtest/group_join_probe.sh SESSION_MS HEARTBEAT_MS STATIC(1|0)
#   e.g. bash loadtest/group_join_probe.sh 10000 2000 1
#
# Needs target/release/threatflow (cargo build --release -p threatflow) and .tools/bin/tansu
# (scripts/setup.sh).
set -euo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
tansu="${TANSU_BIN:-$repo/.tools/bin/tansu}"
engine="$repo/target/release/threatflow"
session_ms="$1" heartbeat_ms="$2" static="$3"
work="$(mktemp -d)"
port=$((20000 + RANDOM % 20000))
"$tansu" broker --listener-url "tcp://127.0.0.1:$port" --advertised-listener-url "tcp://127.0.0.1:$port" \
  --storage-engine memory://tansu/ >/dev/null 2>&1 &
broker=$!
trap 'kill $broker 2>/dev/null; rm -rf "$work"' EXIT
sleep 2
for topic in in out dlq; do
  "$tansu" topic create --broker "tcp://127.0.0.1:$port" --partitions 3 "$topic" >/dev/null 2>&1
done
cat > "$work/engine.toml" <<CONFIG
[kafka]
brokers = "127.0.0.1:$port"
group_id = "probe-$RANDOM"
[kafka.consumer_options]
"session.timeout.ms" = "$session_ms"
"heartbeat.interval.ms" = "$heartbeat_ms"
[[bindings]]
topic = "in"
schema = "flow"
operator = "passthrough"
output_topic = "out"
[output]
dead_letter_topic = "dlq"
[http]
bind = ""
CONFIG
if [ "$static" = 1 ]; then export POD_NAME="probe-pod"; else unset POD_NAME; fi
seconds() { sed 's/\x1b\[[0-9;]*m//g' | head -1 | cut -c12-26 | awk -F: '{print $1*3600 + $2*60 + $3}'; }
for start in 1 2 3; do
  log="$work/engine-$start.log"
  "$engine" run --config "$work/engine.toml" 2> "$log" &
  pid=$!
  for _ in $(seq 1 400); do grep -q "partitions assigned" "$log" && break; sleep 0.1; done
  started=$(grep "engine started" "$log" | seconds)
  assigned=$(grep "partitions assigned" "$log" | seconds)
  echo "session_ms=$session_ms heartbeat_ms=$heartbeat_ms static=$static start=$start join_s=$(awk "BEGIN {printf \"%.1f\", $assigned - $started}")"
  sleep 1
  kill -9 "$pid"
  wait "$pid" 2>/dev/null || true
done
