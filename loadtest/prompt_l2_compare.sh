#!/usr/bin/env bash
# The prompt L2 path in Rust (`threatflow bench prompt`, bare tokenize + infer) beside Python
# onnxruntime 1.31.1 + tokenizers on the same model, the same prompts and the same batches,
# alternating Rust and Python runs in one invocation — Python once with the engine's session
# options (the same optimizers disabled) and once with onnxruntime's defaults; then the Rust operator path through the
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
  echo "run $run: python, engine's session options"
  "$venv/bin/python" loadtest/prompt_l2_python.py --data "$data" --disable SkipLayerNormFusion \
    | tail -1 > "$out/python-$run.json"
  echo "run $run: python, onnxruntime defaults"
  "$venv/bin/python" loadtest/prompt_l2_python.py --data "$data" | tail -1 > "$out/default-$run.json"
done
python3 - "$out" "$runs" <<'PY'
import json, statistics, sys
out, runs = sys.argv[1], int(sys.argv[2])
def load(kind):
    return [json.load(open(f"{out}/{kind}-{r}.json"))["direct"] for r in range(1, runs + 1)]
rust, python, default = load("rust"), load("python"), load("default")
print("batch | rust prompts/s (median of runs) | python, same options | rust/python "
      "| python, ort defaults | rust/defaults")
for i, row in enumerate(rust[0]):
    med = lambda runs, key: statistics.median(run[i][key] for run in runs)
    r, p, d = (med(x, "prompts_per_second") for x in (rust, python, default))
    rm, pm, dm = (med(x, "median_batch_ms") for x in (rust, python, default))
    print(f"{row['batch']:>5} | {r:8.0f} ({rm:.2f} ms/batch) | {p:8.0f} ({pm:.2f} ms/batch) "
          f"| {r / p:.2f}x | {d:8.0f} ({dm:.2f} ms/batch) | {r / d:.2f}x")
PY
echo "operator path through the batcher:"
./target/release/threatflow bench prompt --data "$data" --load-only --rates 50,200,500 --seconds 10
