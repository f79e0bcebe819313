#!/usr/bin/env bash
# The project's test command (README.md): installs what the tests need, then runs every
# unit, property and end-to-end test. The end-to-end tests start their own Tansu broker
# processes on free loopback ports.
set -euo pipefail
repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$repo_root"
bash scripts/setup.sh
export TANSU_BIN="$repo_root/.tools/bin/tansu"
cargo test --workspace --all-targets --locked
