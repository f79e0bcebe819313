#!/usr/bin/env bash
# The prompt L2 path in Rust (`threatflow bench prompt`, bare tokenize + infer) beside Python
# onnxruntime 1.31.1 + tokenizers on the same model, the same prompts and the same batches,
# alternating Rust and Python runs in one invocation; then the Rust operator path through the
# dynamic batcher at three open-loop arrival rates. Needs a release build; installs the two
# Python packages into .tools/bench-venv (no torch).
# Usage: bash loadtest/prompt_l2_compare.sh [RUNS=3] [DATA=models/prompt/data/test.jsonl]
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
runs="${1:-3}"
data="${2:-models/prompt/data/test.jsonl}"
bash scripts/setup.sh >/dev/null
[ -f "$data" ] || python3 models/prompt/recipe/prepare_data.py --test-only
venv=.tools/bench-venv
if [ ! -x "$venv/bin/python" ]; then
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet onnxruntime==1.31.1 tokenizers==0.23.3 numpy
fi
cargo build --release -p threatflow --quiet
out="$(mktemp -d)"
for run in $(seq 1 "$runs"); do
  echo "run $run: rust"
  ./target/release/threatflow bench prompt --data "$data" --direct-only --json | tail -1 > "$out/rust-$run.json"
  echo "run $run: python"
  "$venv/bin/python" loadtest/prompt_l2_python.py --data "$data" | tail -1 > "$out/python-$run.json"
done
python3 - "$out" "$runs" <<'PY'
import json, statistics, sys
out, runs = sys.argv[1], int(sys.argv[2])
def load(kind):
    return [json.load(open(f"{out}/{kind}-{r}.json"))["direct"] for r in range(1, runs + 1)]
rust, python = load("rust"), load("python")
print("batch | rust prompts/s (median of runs) | python prompts/s | rust/python")
for i, row in enumerate(rust[0]):
    r = statistics.median(run[i]["prompts_per_second"] for run in rust)
    p = statistics.median(run[i]["prompts_per_second"] for run in python)
    rm = statistics.median(run[i]["median_batch_ms"] for run in rust)
    pm = statistics.median(run[i]["median_batch_ms"] for run in python)
    print(f"{row['batch']:>5} | {r:8.0f} ({rm:.2f} ms/batch) | {p:8.0f} ({pm:.2f} ms/batch) | {r / p:.2f}x")
PY
echo "operator path through the batcher:"
./target/release/threatflow bench prompt --data "$data" --load-only --rates 50,200,500 --seconds 10
