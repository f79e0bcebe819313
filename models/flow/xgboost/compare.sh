#!/usr/bin/env bash
# Batch scoring, single thread: the engine's evaluator on an imported XGBoost model beside
# Python xgboost's inplace_predict (nthread=1), same model file, same rows, one run.
# Usage: bash models/flow/xgboost/compare.sh [TREES=400] [ROWS=2000]
set -euo pipefail
cd "$(dirname "$0")/../../.."
trees="${1:-400}"
rows="${2:-2000}"
out="target/xgb-bench"
bash models/flow/xgboost/make_fixture.sh "$out" "$trees" "$rows"
echo "python:"
.tools/pyenv/bin/python models/flow/xgboost/time_python.py "$out"
echo "rust (criterion median):"
THREATFLOW_XGB_BENCH_DIR="$PWD/$out" cargo bench --locked -p threatflow --bench flow -- \
  --warm-up-time 2 --measurement-time 5 xgboost_import 2>&1 | grep -E "^xgboost|time:|thrpt:"
echo "python again (drift check):"
.tools/pyenv/bin/python models/flow/xgboost/time_python.py "$out"
