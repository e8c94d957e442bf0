"""The real CLI as real processes: `task-history stdio` beside a running HTTP server on the same
database file, `task-history serve` answering on a port, and the terminal read commands."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import RunningServer, cli_command, cli_env, wait_until_healthy
from mcp import Client, StdioServerParameters
from tool_support import T0, count_executions, fail_once, ok

from server.tools import READ_TOOLS


def _stdio_client(db: Path, *flags: str) -> Client:
    command, *args = cli_command("stdio", "--db", str(db), *flags)
    return Client(StdioServerParameters(command=command, args=args, env=cli_env()))


async def test_stdio_and_http_share_one_database_file(http_server: RunningServer, db_path: Path) -> None:
    async with _stdio_client(db_path) as stdio, Client(http_server.mcp_url) as http:
        written_by_stdio = await fail_once(stdio, "desktop-agent")
        listed_over_http = await ok(http, "tasks_list", task_id="desktop-agent")
        assert [e["span_id"] for e in listed_over_http["executions"]] == [written_by_stdio["span_id"]]
        written_over_http = await ok(
            http, "tasks_record", task_id="code-agent", status="success", started_at=T0
        )
        assert (await ok(stdio, "tasks_get", span_id=written_over_http["span_id"]))["document"]["id"]
        assert await count_executions(stdio) == await count_executions(http) == 2


async def test_stdio_in_read_only_mode_offers_only_the_read_tools(db_path: Path) -> None:
    async with _stdio_client(db_path, "--read-only") as stdio:
        names = {tool.name for tool in (await stdio.list_tools()).tools}
    assert names == {spec.name for spec in READ_TOOLS}


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.fixture
def served_by_cli(db_path: Path) -> Iterator[str]:
    """`task-history serve` as a subprocess; yields its base URL and stops the process it started."""
    port = _free_port()
    command = cli_command("serve", "--port", str(port), "--db", str(db_path), "--log-level", "warning")
    process = subprocess.Popen(
        command, env=cli_env(), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True
    )
    try:
        wait_until_healthy(f"http://127.0.0.1:{port}")
        yield f"http://127.0.0.1:{port}"
    finally:
        process.terminate()
        process.wait(timeout=20)
        assert process.stderr is not None
        process.stderr.close()


@pytest.mark.parametrize("mode", ["auto", "legacy"])
async def test_task_history_serve_answers_mcp_clients(served_by_cli: str, mode: str) -> None:
    async with Client(f"{served_by_cli}/mcp", mode=mode) as client:
        await fail_once(client, "served")
        assert await count_executions(client) == 1


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(cli_command(*args), env=cli_env(), capture_output=True, text=True, timeout=60)


async def test_the_terminal_commands_read_what_the_server_wrote(
    http_server: RunningServer, db_path: Path
) -> None:
    async with Client(http_server.mcp_url) as client:
        failed = await fail_once(client, "nightly_ingest", "connection reset")
    db = ("--db", str(db_path))
    table = _cli("list", *db)
    assert table.returncode == 0 and "nightly_ingest" in table.stdout and "STATUS" in table.stdout
    as_json = json.loads(_cli("last-failed", "--json", *db).stdout)
    assert as_json["failures"][0]["span_id"] == failed["span_id"]
    assert failed["trace_id"] in _cli("trace", failed["trace_id"], *db).stdout
    assert "connection reset" in _cli("get", failed["span_id"], *db).stdout
    missing = _cli("get", "no-such-span", *db)
    assert missing.returncode == 1 and "no execution" in missing.stderr


async def test_the_agent_example_in_the_guide_records_its_run(
    http_server: RunningServer, tmp_path: Path
) -> None:
    guide = (Path(__file__).resolve().parents[2] / "MCP_INTEGRATION.md").read_text(encoding="utf-8")
    section = guide.split("## An agent recording its own execution", 1)[1]
    example = section.split("```python\n", 1)[1].split("```", 1)[0]
    script = tmp_path / "agent.py"
    script.write_text(example.replace("http://127.0.0.1:8001/mcp", http_server.mcp_url), encoding="utf-8")
    done = subprocess.run(
        [sys.executable, str(script)], env=cli_env(), capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    assert "Finished execution" in done.stdout and "daily_reflection: success" in done.stdout
    async with Client(http_server.mcp_url) as client:
        assert await count_executions(client, task_id="daily_reflection", status="success") == 1
