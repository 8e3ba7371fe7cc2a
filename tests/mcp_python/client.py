"""The official Python MCP SDK (mcp 2.x) against slowburn's streamable HTTP endpoint.

Run by tests/mcp_python.sh. Checks both protocol eras rmcp serves at once: the
`ClientSession` handshake (initialize, 2025-11-25, with a session id) and the 2.x
high-level `Client` (stateless 2026-07-28). Exits non-zero on the first failed check.
"""

import asyncio
import json
import sys

import httpx2
from mcp import Client, ClientSession
from mcp.client.streamable_http import streamable_http_client

URL, TOKEN = sys.argv[1], sys.argv[2]
TOOLS = {"list_flows", "query_flow_health", "slo_status", "sql_query", "triage"}


def check(cond, what):
    if not cond:
        print(f"FAILED: {what}", file=sys.stderr)
        sys.exit(1)
    print(f"ok: {what}")


async def legacy_session():
    headers = {"Authorization": f"Bearer {TOKEN}"}
    async with httpx2.AsyncClient(headers=headers) as http:
        async with streamable_http_client(URL, http_client=http) as (read, write):
            async with ClientSession(read, write) as s:
                init = await s.initialize()
                check(init.server_info.name == "slowburn", "initialize: server is slowburn")
                tools = (await s.list_tools()).tools
                check({t.name for t in tools} == TOOLS, f"tools/list: {sorted(t.name for t in tools)}")
                check(all(t.annotations.read_only_hint for t in tools), "every tool is read-only")
                resources = {str(r.uri) for r in (await s.list_resources()).resources}
                check("ops://active-incidents" in resources, "resources/list has ops://active-incidents")
                status = await s.read_resource("ops://slo-status")
                slos = json.loads(status.contents[0].text)["slos"]
                check(len(slos) == 4, "ops://slo-status lists the four SLOs")
                r = await s.call_tool("query_flow_health", {"flow": "subscribe_checkout", "window": "30d"})
                check(not r.is_error, "query_flow_health succeeds")
                check(r.structured_content["flow"] == "subscribe_checkout", "structured content")
                bad = await s.call_tool("query_flow_health", {"flow": "nope"})
                check(bad.is_error and "unknown flow" in bad.content[0].text, "bad flow is isError")


async def stateless_client():
    headers = {"Authorization": f"Bearer {TOKEN}"}
    async with httpx2.AsyncClient(headers=headers) as http:
        async with Client(streamable_http_client(URL, http_client=http)) as c:
            r = await c.call_tool("sql_query", {"sql": "SELECT count(*) AS n FROM logs"})
            check(not r.is_error and r.structured_content["rows"][0][0] > 0, "sql_query via Client")


async def main():
    await legacy_session()
    await stateless_client()


asyncio.run(main())
