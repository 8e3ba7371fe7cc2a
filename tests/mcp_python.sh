#!/usr/bin/env bash
# The official Python MCP SDK against a real `slowburn serve` (streamable HTTP, bearer token).
# Installs `mcp` 2.x into a venv kept beside the build (reused by later runs). Needs the release
# binary: run after `cargo test --release` (tests/run.sh does).
set -euo pipefail
cd "$(dirname "$0")/.."
target="${CARGO_TARGET_DIR:-target}"
bin="$target/release/slowburn"
venv="$target/mcp-python-venv"
[ -x "$bin" ] || { echo "error: $bin is missing: build with cargo build --release" >&2; exit 1; }
if ! "$venv/bin/python" -c "import mcp, httpx2" 2>/dev/null; then
    python3 -m venv "$venv"
    "$venv/bin/pip" install --quiet --disable-pip-version-check "mcp>=2.3,<3"
fi

data=$(mktemp -d)
log="$data/serve.log"
token="python-sdk-token-0123456789"
cleanup() { [ -n "${pid:-}" ] && kill "$pid" 2>/dev/null; wait 2>/dev/null; rm -rf "$data"; }
trap cleanup EXIT
SLOWBURN_MCP_TOKENS="python:$token" NO_COLOR=1 "$bin" serve --listen 127.0.0.1:0 --data-dir "$data/d" >"$log" 2>&1 &
pid=$!
addr=""
for _ in $(seq 1 100); do
    addr=$(grep -o 'slowburn listening on http://[0-9.:]*' "$log" | head -1 | sed 's|.*http://||') || true
    [ -n "$addr" ] && curl -sf "http://$addr/readyz" >/dev/null && break
    sleep 0.1
done
[ -n "$addr" ] || { cat "$log" >&2; echo "error: slowburn did not start" >&2; exit 1; }
curl -sf "http://$addr/v1/drains/vercel" --data-binary @tests/fixtures/vercel/sample_2.json >/dev/null
curl -sf "http://$addr/v1/logs/pino?service=warrant" --data-binary @tests/fixtures/pino/warrant.ndjson >/dev/null
"$venv/bin/python" tests/mcp_python/client.py "http://$addr/mcp" "$token"
echo "python mcp client: all checks passed"
