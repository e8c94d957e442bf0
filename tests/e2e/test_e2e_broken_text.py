"""Broken text on the wire (bytes that are not UTF-8, escaped lone surrogates) and oversized bodies,
sent raw as a client could: over streamable HTTP in both protocol eras and over a real `task-history
stdio` process. Each broken call is a tool error naming the field, nothing is written, and the server
keeps answering; a body over max_request_bytes is a 413 that names the setting."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import httpx2
import pytest
from conftest import RunningServer, cli_command, cli_env, make_settings, serve_in_thread
from mcp import Client
from tool_support import T0, count_executions

from store import Store

LEGACY, MODERN = "2025-11-25", "2026-07-28"
ACCEPT = {"content-type": "application/json", "accept": "application/json, text/event-stream"}
MODERN_META = {
    "io.modelcontextprotocol/protocolVersion": MODERN,
    "io.modelcontextprotocol/clientCapabilities": {},
}
INVALID_BYTES = b"\xff\xfe"
REPLY_TIMEOUT_S = 20.0

# (what is sent inside the task_id string, as raw JSON bytes)
BROKEN_TEXT = {"non-UTF-8 bytes": b"bad" + INVALID_BYTES, "lone surrogate escape": b"bad\\ud800"}


def tools_call(tool: str, arguments: dict[str, Any], *, era: str, broken: bytes = b"") -> bytes:
    """A tools/call as raw bytes; `broken` replaces the placeholder BROKEN inside the arguments."""
    params: dict[str, Any] = {"name": tool, "arguments": arguments}
    if era == MODERN:
        params["_meta"] = MODERN_META
    body = json.dumps({"jsonrpc": "2.0", "id": 7, "method": "tools/call", "params": params}).encode()
    return body.replace(b"BROKEN", broken)


def _reply(response: httpx2.Response) -> dict[str, Any]:
    """The JSON-RPC reply, whether sent as JSON or as one SSE event."""
    if response.headers.get("content-type", "").startswith("text/event-stream"):
        data = [line[5:].strip() for line in response.text.splitlines() if line.startswith("data:")]
        return dict(json.loads(data[-1]))
    return dict(response.json())


async def _legacy_session(http: httpx2.AsyncClient, url: str) -> dict[str, str]:
    """A 2025-11-25 handshake by hand; the headers every later request of the session carries."""
    hello = {"protocolVersion": LEGACY, "capabilities": {}, "clientInfo": {"name": "raw", "version": "1"}}
    body = {"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": hello}
    response = await http.post(url, json=body, headers=ACCEPT)
    headers = {**ACCEPT, "mcp-session-id": response.headers["mcp-session-id"], "mcp-protocol-version": LEGACY}
    await http.post(url, json={"jsonrpc": "2.0", "method": "notifications/initialized"}, headers=headers)
    return headers


async def _post_call(url: str, era: str, body: bytes, tool: str = "tasks_start") -> httpx2.Response:
    async with httpx2.AsyncClient(timeout=REPLY_TIMEOUT_S) as http:
        if era == LEGACY:
            headers = await _legacy_session(http, url)
        else:
            headers = {**ACCEPT, "mcp-protocol-version": MODERN, "mcp-method": "tools/call", "mcp-name": tool}
        return await http.post(url, content=body, headers=headers)


@pytest.mark.parametrize("era", [MODERN, LEGACY])
@pytest.mark.parametrize("kind", list(BROKEN_TEXT))
async def test_broken_text_over_http_is_a_tool_error_naming_the_field(
    http_server: RunningServer, era: str, kind: str
) -> None:
    body = tools_call("tasks_start", {"task_id": "BROKEN"}, era=era, broken=BROKEN_TEXT[kind])
    response = await _post_call(http_server.mcp_url, era, body)
    assert response.status_code == 200
    result = _reply(response)["result"]
    assert result["isError"] is True
    assert "task_id is not valid Unicode text" in result["content"][0]["text"]
    async with Client(http_server.mcp_url) as client:
        assert await count_executions(client) == 0


@pytest.mark.parametrize("kind", list(BROKEN_TEXT))
async def test_a_broken_key_is_named_with_a_replacement_character_not_the_wires_mark(
    http_server: RunningServer, kind: str
) -> None:
    arguments = {"task_id": "t", "attributes": {"kBROKEN": 1}}
    body = tools_call("tasks_start", arguments, era=MODERN, broken=BROKEN_TEXT[kind])
    response = await _post_call(http_server.mcp_url, MODERN, body)
    text = _reply(response)["result"]["content"][0]["text"]
    assert "the key of attributes.kbad\ufffd" in text and "is not valid Unicode text" in text, text
    assert "\ufdd0" not in text  # server.wire_text's internal mark


# JSON numbers Python's parser reads as NaN or an infinity, which JSON text cannot carry back out.
NON_FINITE = {
    "usage.cost": ({"usage": {"cost": "NUMBER"}}, b"1e400", "finite number"),
    "attributes.ratio": ({"attributes": {"ratio": "NUMBER"}}, b"NaN", "JSON cannot hold"),
    "attributes.peak[0]": ({"attributes": {"peak": ["NUMBER"]}}, b"-Infinity", "JSON cannot hold"),
}


@pytest.mark.parametrize("era", [MODERN, LEGACY])
@pytest.mark.parametrize("field", list(NON_FINITE))
async def test_a_non_finite_number_is_a_tool_error_naming_the_field_not_a_silent_null(
    http_server: RunningServer, era: str, field: str
) -> None:
    extra, number, problem = NON_FINITE[field]
    arguments = {"task_id": "t", "started_at": T0, "status": "success", **extra}
    body = tools_call("tasks_record", arguments, era=era).replace(b'"NUMBER"', number)
    response = await _post_call(http_server.mcp_url, era, body, tool="tasks_record")
    result = _reply(response)["result"]
    assert result["isError"] is True, result
    text = result["content"][0]["text"]
    assert field in text and problem in text, text
    async with Client(http_server.mcp_url) as client:
        assert await count_executions(client) == 0


@pytest.mark.parametrize("mode", ["auto", "legacy"])
async def test_a_10_mb_field_is_a_tool_error_naming_field_and_setting(
    http_server: RunningServer, mode: str
) -> None:
    async with Client(http_server.mcp_url, mode=mode) as client:
        arguments = {"task_id": "t", "started_at": T0, "status": "success", "result": "x" * 10**7}
        result = await client.call_tool("tasks_record", arguments)
        assert result.is_error
        text = result.content[0].text  # type: ignore[union-attr]
        assert "result" in text and "max_text_chars" in text
        assert await count_executions(client) == 0


async def test_a_body_over_max_request_bytes_is_a_413_naming_the_setting(tmp_path: Path) -> None:
    settings = make_settings(tmp_path / "small.db", max_request_bytes=64 * 1024)
    with serve_in_thread(settings) as running:
        body = tools_call("tasks_start", {"task_id": "t", "attributes": {"pad": "x" * 100_000}}, era=MODERN)
        response = await _post_call(running.mcp_url, MODERN, body)
        assert response.status_code == 413
        message = response.json()["error"]["message"]
        assert "max_request_bytes (65,536 bytes)" in message and "TASK_HISTORY_MAX_REQUEST_BYTES" in message
        async with Client(running.mcp_url) as client:
            assert await count_executions(client) == 0


# ---- stdio ----------------------------------------------------------------------------------------


class StdioWire:
    """A `task-history stdio` process spoken to line by line, as raw bytes."""

    def __init__(self, process: asyncio.subprocess.Process) -> None:
        self.process = process

    async def send(self, line: bytes) -> None:
        assert self.process.stdin is not None
        self.process.stdin.write(line + b"\n")
        await self.process.stdin.drain()

    async def reply(self) -> dict[str, Any]:
        assert self.process.stdout is not None
        async with asyncio.timeout(REPLY_TIMEOUT_S):
            return dict(json.loads(await self.process.stdout.readline()))

    async def handshake(self) -> None:
        hello = {"protocolVersion": LEGACY, "capabilities": {}, "clientInfo": {"name": "raw", "version": "1"}}
        await self.send(
            json.dumps({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": hello}).encode()
        )
        assert (await self.reply())["result"]["protocolVersion"] == LEGACY
        await self.send(b'{"jsonrpc": "2.0", "method": "notifications/initialized"}')


async def _close(process: asyncio.subprocess.Process) -> bool:
    """Whether end of input ended the server; one that does not end by then is killed, so a failing
    test leaves no process behind (and its own error is the one reported)."""
    assert process.stdin is not None
    process.stdin.close()
    try:
        async with asyncio.timeout(REPLY_TIMEOUT_S):
            await process.wait()
    except TimeoutError:
        process.kill()
        await process.wait()
        return False
    return True


async def test_broken_text_over_stdio_is_answered_as_a_tool_error_and_nothing_is_stored(
    db_path: Path,
) -> None:
    command, *args = cli_command("stdio", "--db", str(db_path))
    process = await asyncio.create_subprocess_exec(
        command, *args, env=cli_env(), stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE
    )
    wire = StdioWire(process)
    try:
        await wire.handshake()
        for broken in BROKEN_TEXT.values():
            await wire.send(tools_call("tasks_start", {"task_id": "BROKEN"}, era=LEGACY, broken=broken))
            result = (await wire.reply())["result"]
            assert result["isError"] is True
            assert "task_id is not valid Unicode text" in result["content"][0]["text"]
        await wire.send(tools_call("tasks_start", {"task_id": "fine"}, era=LEGACY))
        assert (await wire.reply())["result"].get("isError") is not True
    finally:
        ended_on_eof = await _close(process)
    assert ended_on_eof, "task-history stdio did not exit when its input closed"
    async with await Store.open(str(db_path)) as store:
        page = await store.list_executions(limit=10)
    assert [e.task_id for e in page.executions] == ["fine"]
