#!/usr/bin/env bash
# SQL benchmark: slowburn's query engine (DataFusion) against DuckDB on the same Parquet archive.
#   bash bench/sql_vs_duckdb.sh [archive-dir] [days] [entries-per-second]
# Builds a synthetic archive (7 days at 10 Vercel entries/s by default) with the real ingest
# code, then runs bench/sql/*.sql in both engines and prints a Markdown table.
set -euo pipefail
cd "$(dirname "$0")/.."
dir=${1:-/tmp/slowburn-sqlbench/archive}
days=${2:-7}
rate=${3:-10}
target=${CARGO_TARGET_DIR:-target}
# The whole workspace, so that features unify as in the normal build (no second datafusion build).
cargo build --release --locked --workspace
if [ ! -d "$dir/logs" ]; then
  "$target/release/synth_logs" --dir "$dir" --days "$days" --rate "$rate"
fi
venv="$target/duckdb-venv"
if [ ! -x "$venv/bin/python" ]; then
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet duckdb
fi
"$venv/bin/python" bench/sql_vs_duckdb.py --archive "$dir" --sql-bench "$target/release/sql_bench"
