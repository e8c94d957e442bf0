"""Transport security on a real server: Host/Origin validation, the bearer token, the refusal to serve an
open port without a token, and read-only mode."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path

import httpx2
import pytest
from conftest import RunningServer, cli_command, cli_env, make_settings, serve_in_thread
from mcp import Client
from mcp.client.streamable_http import streamable_http_client

from server.tools import READ_TOOLS

TOKEN = "s3cret-t0ken"
INITIALIZE = (
    b'{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-11-25",'
    b'"capabilities":{},"clientInfo":{"name":"security-test","version":"1"}}}'
)
HEADERS = {"content-type": "application/json", "accept": "application/json, text/event-stream"}


def _post(url: str, **headers: str) -> httpx2.Response:
    with httpx2.Client(timeout=10) as http:
        return http.post(url, content=INITIALIZE, headers={**HEADERS, **headers})


@pytest.fixture
def guarded_server(database_url: str) -> Iterator[RunningServer]:
    settings = make_settings(
        database_url, token=TOKEN, allowed_hosts=["th.internal:8001"], allowed_origins=["https://ui.example"]
    )
    with serve_in_thread(settings) as running:
        yield running


def test_a_foreign_host_header_gets_421(http_server: RunningServer) -> None:
    assert _post(http_server.mcp_url, host="evil.example").status_code == 421
    assert _post(http_server.mcp_url, host="evil.example:8001").status_code == 421


def test_a_foreign_origin_gets_403(http_server: RunningServer) -> None:
    assert _post(http_server.mcp_url, origin="http://evil.example").status_code == 403


def test_loopback_hosts_and_origins_on_any_port_are_accepted(http_server: RunningServer) -> None:
    assert (
        _post(http_server.mcp_url, host="localhost:9999", origin="http://127.0.0.1:3000").status_code == 200
    )


def test_without_the_token_a_request_gets_401_with_a_bearer_challenge(guarded_server: RunningServer) -> None:
    response = _post(guarded_server.mcp_url)
    assert response.status_code == 401
    assert response.headers["www-authenticate"].startswith('Bearer realm="task-history"')


def test_a_wrong_token_gets_401_invalid_token(guarded_server: RunningServer) -> None:
    response = _post(guarded_server.mcp_url, authorization="Bearer not-the-token")
    assert response.status_code == 401 and 'error="invalid_token"' in response.headers["www-authenticate"]
    assert _post(guarded_server.mcp_url, authorization=f"Basic {TOKEN}").status_code == 401


def test_the_right_token_gets_200(guarded_server: RunningServer) -> None:
    assert _post(guarded_server.mcp_url, authorization=f"Bearer {TOKEN}").status_code == 200


def test_configured_hosts_and_origins_are_accepted_and_healthz_needs_no_token(
    guarded_server: RunningServer,
) -> None:
    auth = f"Bearer {TOKEN}"
    assert _post(guarded_server.mcp_url, authorization=auth, host="th.internal:8001").status_code == 200
    assert _post(guarded_server.mcp_url, authorization=auth, origin="https://ui.example").status_code == 200
    assert _post(guarded_server.mcp_url, authorization=auth, host="th.internal:9999").status_code == 421
    with httpx2.Client(timeout=10) as http:
        assert http.get(f"{guarded_server.base_url}/healthz").status_code == 200


@pytest.mark.parametrize("mode", ["auto", "legacy"])
async def test_the_sdk_client_works_with_the_token_in_both_eras(
    guarded_server: RunningServer, mode: str
) -> None:
    http = httpx2.AsyncClient(headers={"Authorization": f"Bearer {TOKEN}"}, timeout=30)
    transport = streamable_http_client(guarded_server.mcp_url, http_client=http)
    async with http, Client(transport, mode=mode) as client:
        result = await client.call_tool("tasks_list", {})
    assert not result.is_error


def test_serve_on_a_public_address_without_a_token_refuses_to_start(tmp_path: Path) -> None:
    command = cli_command("serve", "--host", "0.0.0.0", "--port", "8001", "--db", str(tmp_path / "h.db"))
    done = subprocess.run(command, env=cli_env(), capture_output=True, text=True, timeout=60)
    assert done.returncode != 0
    assert "loopback" in done.stderr and "token" in done.stderr.lower()
    assert not (tmp_path / "h.db").exists()


@pytest.mark.parametrize("mode", ["auto", "legacy"])
async def test_read_only_mode_serves_only_the_read_tools(database_url: str, mode: str) -> None:
    with serve_in_thread(make_settings(database_url, read_only=True)) as running:
        async with Client(running.mcp_url, mode=mode) as client:
            names = {tool.name for tool in (await client.list_tools()).tools}
            refused = await client.call_tool("tasks_record", {"task_id": "t", "status": "success"})
    assert names == {spec.name for spec in READ_TOOLS}
    assert refused.is_error and "read-only" in refused.content[0].text
