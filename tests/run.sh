#!/usr/bin/env bash
# The test command README.md gives: formatting, lints, the one-version rule for the data stack,
# then every test of the workspace in the release profile (the profile `serve` and the
# benchmarks use, so one build serves all three), then the official Python MCP client against
# the real server (it installs the `mcp` package into a venv beside the build).
set -euo pipefail
cd "$(dirname "$0")/.."

echo "== cargo fmt --check"
cargo fmt --all -- --check

echo "== one version of arrow, parquet, object_store, datafusion in Cargo.lock"
for crate in arrow parquet object_store datafusion; do
    versions=$(awk -v name="$crate" '$0 == "name = \"" name "\"" { getline; print $3 }' Cargo.lock | sort -u)
    count=$(printf '%s\n' "$versions" | grep -c . || true)
    if [ "$count" -gt 1 ]; then
        echo "error: Cargo.lock holds $count versions of $crate: $versions" >&2
        exit 1
    fi
done

echo "== cargo test --release --workspace"
cargo test --release --workspace --locked

echo "== the official Python MCP SDK (mcp 2.x) against slowburn serve"
bash tests/mcp_python.sh

echo "== cargo clippy --release --workspace --all-targets -- -D warnings"
cargo clippy --release --workspace --all-targets --locked -- -D warnings

echo "all checks passed"
