"""Times Python xgboost `inplace_predict` (nthread=1) on the rows of a fixture directory.

Prints rows/s as the median of repeated batch predictions, like criterion's median, on the
same model file and rows the Rust benchmark (`engine/benches/flow.rs`, group
`xgboost_import`) uses. Run through compare.sh.
"""

import json
import pathlib
import statistics
import sys
import time

import numpy as np
import xgboost as xgb

directory = pathlib.Path(sys.argv[1])
booster = xgb.Booster(model_file=str(directory / "binary.json"))
booster.set_param({"nthread": 1})
rows = json.loads((directory / "expected.json").read_text())["rows"]
matrix = np.asarray([[np.nan if v is None else v for v in row] for row in rows], dtype=np.float32)
for _ in range(20):  # warm-up
    booster.inplace_predict(matrix, predict_type="margin")
timings = []
for _ in range(200):
    started = time.perf_counter()
    booster.inplace_predict(matrix, predict_type="margin")
    timings.append(time.perf_counter() - started)
median = statistics.median(timings)
print(json.dumps({"rows": len(rows), "median_batch_s": median, "rows_per_s": len(rows) / median,
                  "xgboost": xgb.__version__}))
