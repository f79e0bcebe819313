"""Times Python xgboost `inplace_predict` (nthread=1) for `threatflow bench trees`.

Usage: bench_trees.py MODEL.json ROWS.json MARGINS_OUT.json REPEATS
Prints one JSON line: rows, median seconds per batch, rows/s, xgboost version; writes the
margins of the last batch (for the parity check on the Rust side).
"""

import json
import pathlib
import statistics
import sys
import time

import numpy as np
import xgboost as xgb

model_path, rows_path, margins_path, repeats = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
booster = xgb.Booster(model_file=model_path)
booster.set_param({"nthread": 1})
rows = json.loads(pathlib.Path(rows_path).read_text())["rows"]
matrix = np.asarray([[np.nan if v is None else v for v in row] for row in rows], dtype=np.float32)
for _ in range(max(3, repeats // 10)):  # warm-up
    margins = booster.inplace_predict(matrix, predict_type="margin")
timings = []
for _ in range(repeats):
    started = time.perf_counter()
    margins = booster.inplace_predict(matrix, predict_type="margin")
    timings.append(time.perf_counter() - started)
pathlib.Path(margins_path).write_text(json.dumps([float(m) for m in np.ravel(margins)]))
median = statistics.median(timings)
print(json.dumps({"rows": len(rows), "median_batch_s": median, "rows_per_s": len(rows) / median,
                  "xgboost": xgb.__version__}))
