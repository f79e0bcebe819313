#!/usr/bin/env bash
# How fast a registry promotion and a rollback reach a running engine: a fresh Tansu broker,
# one engine scoring OPERATOR's topic, then CYCLES rounds of `models promote <op> v2` and
# `models rollback <op>`. For each change it prints the seconds until `/models` shows the new
# version (polled every 10 ms), and the engine's own `swap_ms`
# (fetch + verify + load + warm on the registry thread). v2 is a copy of the shipped v1 under
# another version name, so both stay in the engine's cache after the first round: the
# rollbacks measure the cached path the issue asks to be under 1 s. Times run from the start
# of the `models` command (which reads the registry log and, for promote, downloads and
# verifies the version first) to `/models` answering with the new version.
#
#   bash loadtest/registry_swap_probe.sh [OPERATOR=flow] [CYCLES=5]
#
# Needs target/release/threatflow (cargo build --release -p threatflow), .tools/bin/tansu and,
# for prompt, .tools/lib/libonnxruntime.so (scripts/setup.sh).
set -euo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
tansu="${TANSU_BIN:-$repo/.tools/bin/tansu}"
engine="$repo/target/release/threatflow"
operator="${1:-flow}"
cycles="${2:-5}"
work="$(mktemp -d)"
port=$((20000 + RANDOM % 20000))
http_port=$((40000 + RANDOM % 20000))
"$tansu" broker --listener-url "tcp://127.0.0.1:$port" --advertised-listener-url "tcp://127.0.0.1:$port" \
  --storage-engine memory://tansu/ >/dev/null 2>&1 &
broker=$!
engine_pid=""
trap 'kill $engine_pid $broker 2>/dev/null; rm -rf "$work"' EXIT
sleep 2
for topic in in out dlq; do
  "$tansu" topic create --broker "tcp://127.0.0.1:$port" --partitions 2 "$topic" >/dev/null 2>&1
done
mkdir -p "$work/models/$operator" "$work/build"
cp -r "$repo/models/$operator/v1" "$work/models/$operator/v1"
if [ "$operator" = prompt ]; then cp -r "$repo/models/prompt/rules" "$work/models/prompt/rules"; fi
cp -r "$repo/models/$operator/v1" "$work/build/v2"
python3 - "$work/build/v2/manifest.json" <<'PY'
import json, sys
path = sys.argv[1]
manifest = json.load(open(path))
manifest["version"] = "v2"
json.dump(manifest, open(path, "w"), indent=2)
PY
cat > "$work/engine.toml" <<CONFIG
[kafka]
brokers = "127.0.0.1:$port"
group_id = "swap-probe-$RANDOM"
[[bindings]]
topic = "in"
schema = "$operator"
operator = "$operator"
output_topic = "out"
[output]
dead_letter_topic = "dlq"
[storage]
state_dir = "$work/state"
model_dir = "$work/models"
[http]
bind = "127.0.0.1:$http_port"
CONFIG
"$engine" run --config "$work/engine.toml" 2> "$work/engine.log" &
engine_pid=$!
version_now() { curl -s "127.0.0.1:$http_port/models" | python3 -c 'import json,sys; print(next(iter(json.load(sys.stdin).values()))["model_version"])' 2>/dev/null || true; }
for _ in $(seq 1 600); do [ "$(version_now)" = v1 ] && break; sleep 0.1; done
"$engine" models --config "$work/engine.toml" push "$work/build/v2" --as none >/dev/null
models() { "$engine" models --config "$work/engine.toml" "$@" >/dev/null; }
# Seconds from $2 (the command's start) to /models showing version $1.
wait_for() {
  local end
  for _ in $(seq 1 3000); do [ "$(version_now)" = "$1" ] && break; sleep 0.01; done
  end=$(date +%s.%N)
  awk "BEGIN {printf \"%.3f\", $end - $2}"
}
for cycle in $(seq 1 "$cycles"); do
  start=$(date +%s.%N)
  models promote "$operator" v2 --reason "probe $cycle"
  promote_s=$(wait_for v2 "$start")
  start=$(date +%s.%N)
  models rollback "$operator" --reason "probe $cycle"
  rollback_s=$(wait_for v1 "$start")
  echo "operator=$operator cycle=$cycle promote_total_s=$promote_s rollback_total_s=$rollback_s"
done
echo "engine swap_ms (fetch + verify + load + warm), in order:"
sed 's/\x1b\[[0-9;]*m//g' "$work/engine.log" | grep -o 'swap_ms=[0-9]*' | tr '\n' ' '
echo
