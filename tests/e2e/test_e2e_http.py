"""The real server over real streamable HTTP (uvicorn on a loopback port), driven by the SDK's client in
both protocol eras: 2026-07-28 (mode="auto", what Claude Code speaks) and the 2025-11-25 handshake
(mode="legacy", what mcp-remote and the Inspector speak)."""

from __future__ import annotations

import asyncio
import json

import httpx2
import pytest
from conftest import RunningServer
from mcp import Client
from tool_support import (
    BAD_CALLS,
    T0,
    assert_readable_error,
    check_seed_000_trace,
    count_executions,
    fail_once,
    ok,
    walk_seed_000,
)

from server.tools import READ_TOOLS, WRITE_TOOLS

ERAS = {"auto": "2026-07-28", "legacy": "2025-11-25"}
JSON_HEADERS = {"content-type": "application/json", "accept": "application/json, text/event-stream"}
MODERN_CALL_HEADERS = {
    **JSON_HEADERS,
    "mcp-protocol-version": "2026-07-28",
    "mcp-method": "tools/call",
    "mcp-name": "tasks_start",
}
MODERN_META = {
    "io.modelcontextprotocol/protocolVersion": "2026-07-28",
    "io.modelcontextprotocol/clientCapabilities": {},
}


def raw_call(tool: str, arguments: dict[str, object]) -> bytes:
    """A 2026-07-28 tools/call as raw bytes (json.dumps writes a lone surrogate as an escape)."""
    params = {"name": tool, "arguments": arguments, "_meta": MODERN_META}
    return json.dumps({"jsonrpc": "2.0", "id": 7, "method": "tools/call", "params": params}).encode()


pytestmark = pytest.mark.parametrize("mode", list(ERAS))


async def test_each_era_negotiates_its_protocol_version(http_server: RunningServer, mode: str) -> None:
    async with Client(http_server.mcp_url, mode=mode) as client:
        assert client.protocol_version == ERAS[mode]
        assert len((await client.list_tools()).tools) == len(READ_TOOLS) + len(WRITE_TOOLS)


async def test_the_seed_000_walk_shows_task_and_worker_executions_in_the_trace(
    http_server: RunningServer, mode: str
) -> None:
    async with Client(http_server.mcp_url, mode=mode) as client:
        trace_id = await walk_seed_000(client)
        await check_seed_000_trace(client, trace_id)


async def test_a_failing_task_a_retry_chain_and_a_duplicate(http_server: RunningServer, mode: str) -> None:
    async with Client(http_server.mcp_url, mode=mode) as client:
        first = await fail_once(client, "nightly_ingest", "connection reset")
        second = await fail_once(client, "nightly_ingest", "connection reset", retry_of=first["span_id"])
        third = await ok(client, "tasks_start", task_id="nightly_ingest", retry_of=second["span_id"])
        await ok(client, "tasks_finish", span_id=third["span_id"], status="success")
        trace = await ok(client, "tasks_by_trace", trace_id=first["trace_id"])
        assert [e["attempt"] for e in trace["executions"]] == [1, 2, 3] and trace["final_status"] == "success"
        failed = await ok(client, "tasks_last_failed", task_id="nightly_ingest")
        assert failed["total_failures"] == 2 and failed["error_patterns"][0]["count"] == 2
        once = await ok(client, "tasks_start", task_id="report", idempotency_key="report-2025-11-04")
        twice = await ok(client, "tasks_start", task_id="report", idempotency_key="report-2025-11-04")
        assert twice["duplicate"] and twice["span_id"] == once["span_id"]
        assert await count_executions(client, task_id="report") == 1


async def test_every_bad_call_is_a_readable_tool_error_and_the_server_keeps_serving(
    http_server: RunningServer, mode: str
) -> None:
    async with Client(http_server.mcp_url, mode=mode) as client:
        await ok(client, "tasks_record", task_id="baseline", status="success", started_at=T0)
        for tool, arguments, fragments in BAD_CALLS:
            if any(
                isinstance(v, str) and any("\ud800" <= c <= "\udfff" for c in v) for v in _strings(arguments)
            ):
                continue  # the client cannot even encode lone surrogates; sent raw below
            await assert_readable_error(client, tool, arguments, fragments)
        assert await count_executions(client) == 1


def _strings(value: object) -> list[object]:
    if isinstance(value, dict):
        return [s for item in value.values() for s in _strings(item)]
    if isinstance(value, list):
        return [s for item in value for s in _strings(item)]
    return [value]


async def test_twenty_concurrent_clients_lose_no_writes(http_server: RunningServer, mode: str) -> None:
    async def worker(n: int) -> None:
        async with Client(http_server.mcp_url, mode=mode) as client:
            for k in range(5):
                started = await ok(client, "tasks_start", task_id=f"agent-{n}", attributes={"k": k})
                await ok(client, "tasks_finish", span_id=started["span_id"], status="success")

    await asyncio.gather(*(worker(n) for n in range(20)))
    async with Client(http_server.mcp_url, mode=mode) as client:
        assert await count_executions(client, status="success") == 100
        assert await count_executions(client, status="running") == 0


async def test_a_lone_surrogate_sent_raw_is_a_tool_error_naming_the_field(
    http_server: RunningServer, mode: str
) -> None:
    body = raw_call("tasks_start", {"task_id": "bad\ud800"})
    assert b"bad\\ud800" in body
    async with httpx2.AsyncClient(timeout=10) as http:
        response = await http.post(http_server.mcp_url, content=body, headers=MODERN_CALL_HEADERS)
    result = response.json()["result"]
    assert result["isError"] is True and "task_id is not valid Unicode" in result["content"][0]["text"]
    async with Client(http_server.mcp_url, mode=mode) as client:
        assert await count_executions(client) == 0


async def test_healthz_reports_the_database(http_server: RunningServer, mode: str) -> None:
    async with httpx2.AsyncClient(timeout=10) as http:
        response = await http.get(f"{http_server.base_url}/healthz")
    assert response.status_code == 200
    assert response.json()["status"] == "ok" and response.json()["database"] == "ok"
