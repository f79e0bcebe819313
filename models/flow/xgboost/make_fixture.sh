#!/usr/bin/env bash
# Rebuilds models/flow/xgboost/fixture/ with Python xgboost (xgboost-cpu 3.2.0 from PyPI).
# The venv lives in .tools/pyenv (git-ignored); CI does not need it: the fixture is committed.
set -euo pipefail
cd "$(dirname "$0")/../../.."
if [ ! -x .tools/pyenv/bin/python ]; then
  python3 -m venv .tools/pyenv
fi
.tools/pyenv/bin/pip install -q "xgboost-cpu==3.2.0" "numpy>=1.26"
.tools/pyenv/bin/python models/flow/xgboost/make_fixture.py "$@"
