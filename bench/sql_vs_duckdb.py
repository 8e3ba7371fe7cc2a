"""Runs the same log queries with DuckDB and with slowburn (DataFusion) over the same Parquet
archive, checks that both give the same answers, and prints a Markdown table of median times.

Run through bench/sql_vs_duckdb.sh, which builds the archive and the Rust side.
"""

import argparse
import datetime as dt
import json
import math
import pathlib
import subprocess
import sys
import time

import duckdb


def normalize(value):
    """A value both engines can be compared on: timestamps as epoch ms, floats rounded."""
    if isinstance(value, dt.datetime):
        if value.tzinfo is None:
            value = value.replace(tzinfo=dt.timezone.utc)
        return round(value.timestamp() * 1000)
    if isinstance(value, str) and len(value) >= 20 and value[4] == "-" and value[10] == "T":
        try:
            parsed = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
            return round(parsed.timestamp() * 1000)
        except ValueError:
            return value
    if isinstance(value, float) and math.isnan(value):
        return None
    return value


def same_value(a, b):
    """Equal, with a relative tolerance for floats (engines interpolate percentiles in a different
    order of operations, which differs in the last bits)."""
    a, b = normalize(a), normalize(b)
    if isinstance(a, (int, float)) and isinstance(b, (int, float)) and not isinstance(a, bool):
        return abs(a - b) <= 1e-6 * max(1.0, abs(a), abs(b))
    return a == b


def same_rows(left, right):
    return len(left) == len(right) and all(
        len(l) == len(r) and all(same_value(x, y) for x, y in zip(l, r)) for l, r in zip(left, right)
    )


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--archive", required=True)
    p.add_argument("--sql-bench", required=True, help="the sql_bench binary")
    p.add_argument("--queries", default=str(pathlib.Path(__file__).parent / "sql"))
    p.add_argument("--runs", type=int, default=5)
    args = p.parse_args()

    archive = pathlib.Path(args.archive).resolve()
    queries = sorted(pathlib.Path(args.queries).glob("*.datafusion.sql"))
    df_out = subprocess.run(
        [args.sql_bench, "--archive", str(archive), "--runs", str(args.runs), *map(str, queries)],
        check=True, capture_output=True, text=True,
    )
    sys.stderr.write(df_out.stderr)
    datafusion = {r["name"]: r for r in map(json.loads, df_out.stdout.splitlines())}

    con = duckdb.connect()
    con.execute("SET TimeZone = 'UTC'")
    threads = con.execute("SELECT current_setting('threads')").fetchone()[0]
    for table in ("logs", "requests"):
        con.execute(
            f"CREATE VIEW {table} AS SELECT * FROM read_parquet('{archive}/{table}/*/*/*.parquet', hive_partitioning = true)"
        )
    rows = []
    mismatches = 0
    for q in queries:
        name = q.name.split(".")[0]
        sql = q.with_name(f"{name}.duckdb.sql").read_text()
        first = con.execute(sql).fetchall()
        times = []
        for _ in range(max(args.runs, 1)):
            started = time.perf_counter()
            con.execute(sql).fetchall()
            times.append((time.perf_counter() - started) * 1000)
        times.sort()
        duck_ms = times[len(times) // 2]
        df = datafusion[name]
        same = same_rows(first, df["result"])
        mismatches += not same
        rows.append((name, len(first), df["median_ms"], duck_ms, same))

    print(f"duckdb {duckdb.__version__} ({threads} threads), {args.runs} timed runs per query after a warm-up, medians")
    print()
    print("| query | rows | slowburn (DataFusion) ms | DuckDB ms | DuckDB ÷ slowburn | same answer |")
    print("|---|---:|---:|---:|---:|---|")
    for name, n, df_ms, duck_ms, same in rows:
        print(f"| `{name}` | {n} | {df_ms:.1f} | {duck_ms:.1f} | {duck_ms / df_ms:.2f} | {'yes' if same else 'NO'} |")
    if mismatches:
        sys.exit(f"{mismatches} queries gave different answers")


if __name__ == "__main__":
    main()
