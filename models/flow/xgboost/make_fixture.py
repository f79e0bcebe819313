"""Builds the XGBoost parity fixture that `engine/tests/xgboost_parity.rs` checks.

Trains two small XGBoost models with Python xgboost on the numeric NSL-KDD columns of
models/flow/data/KDDTrain+_20Percent.txt — a binary:logistic model and a 5-class
multi:softprob model — saves them with `save_model("*.json")`, and writes rows (float32
values, some set to NaN to exercise default directions) with Python's margins and
probabilities for them. Deterministic: fixed seeds, one thread.

Run: bash models/flow/xgboost/make_fixture.sh   (creates a venv with xgboost-cpu)
"""

import csv
import json
import pathlib
import sys

import numpy as np
import xgboost as xgb

HERE = pathlib.Path(__file__).resolve().parent
DATA = HERE.parent / "data" / "KDDTrain+_20Percent.txt"
CATEGORIES = HERE.parent / "data" / "attack_types.csv"
CLASSES = ["normal", "dos", "probe", "r2l", "u2r"]
SYMBOLIC_COLUMNS = (1, 2, 3)


def load():
    category = dict(
        line.strip().split(",") for line in CATEGORIES.read_text().splitlines() if "," in line
    )
    rows, binary, multi = [], [], []
    with DATA.open() as handle:
        for record in csv.reader(handle):
            values = [float(v) for i, v in enumerate(record[:41]) if i not in SYMBOLIC_COLUMNS]
            rows.append(values)
            label = record[41]
            binary.append(0 if label == "normal" else 1)
            multi.append(CLASSES.index(category.get(label, "normal")))
    return np.asarray(rows, dtype=np.float32), np.asarray(binary), np.asarray(multi)


def main(out_dir: pathlib.Path, trees: int, rows_out: int) -> None:
    features, binary, multi = load()
    params = {"max_depth": 6, "eta": 0.1, "nthread": 1, "seed": 7, "tree_method": "hist"}
    binary_model = xgb.train(
        {**params, "objective": "binary:logistic"}, xgb.DMatrix(features, label=binary), trees
    )
    multi_model = xgb.train(
        {**params, "objective": "multi:softprob", "num_class": len(CLASSES)},
        xgb.DMatrix(features, label=multi),
        max(1, trees // 4),
    )
    out_dir.mkdir(parents=True, exist_ok=True)
    binary_model.save_model(str(out_dir / "binary.json"))
    multi_model.save_model(str(out_dir / "multiclass.json"))

    rng = np.random.default_rng(11)
    picked = features[rng.choice(len(features), size=rows_out, replace=False)].copy()
    # Missing values follow each node's default direction.
    picked[rng.random(picked.shape) < 0.05] = np.nan
    matrix = xgb.DMatrix(picked)
    fixture = {
        "xgboost_version": xgb.__version__,
        "rows": [[None if np.isnan(v) else float(v) for v in row] for row in picked],
        "binary_margin": binary_model.predict(matrix, output_margin=True).astype(float).tolist(),
        "binary_probability": binary_model.predict(matrix).astype(float).tolist(),
        "multiclass_margin": multi_model.predict(matrix, output_margin=True).astype(float).tolist(),
        "multiclass_probability": multi_model.predict(matrix).astype(float).tolist(),
    }
    (out_dir / "expected.json").write_text(json.dumps(fixture) + "\n")
    print(f"xgboost {xgb.__version__}: {trees} binary trees, {rows_out} rows -> {out_dir}")


if __name__ == "__main__":
    target = pathlib.Path(sys.argv[1]) if len(sys.argv) > 1 else HERE / "fixture"
    tree_count = int(sys.argv[2]) if len(sys.argv) > 2 else 40
    row_count = int(sys.argv[3]) if len(sys.argv) > 3 else 300
    main(target, tree_count, row_count)
