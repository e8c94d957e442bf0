"""The real CLI as real processes: `task-history stdio` beside a running HTTP server on the same
database, `task-history serve` answering on a port, and the terminal read commands; each on a SQLite
file and on PostgreSQL."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import RunningServer, ServerProcess, cli_command, cli_env, serve_process
from mcp import Client, StdioServerParameters
from tool_support import T0, count_executions, fail_once, ok

from server.tools import READ_TOOLS


def _stdio_client(database_url: str, *flags: str) -> Client:
    command, *args = cli_command("stdio", "--db", database_url, *flags)
    return Client(StdioServerParameters(command=command, args=args, env=cli_env()))


async def test_stdio_and_http_share_one_database(http_server: RunningServer, database_url: str) -> None:
    async with _stdio_client(database_url) as stdio, Client(http_server.mcp_url) as http:
        written_by_stdio = await fail_once(stdio, "desktop-agent")
        listed_over_http = await ok(http, "tasks_list", task_id="desktop-agent")
        assert [e["span_id"] for e in listed_over_http["executions"]] == [written_by_stdio["span_id"]]
        written_over_http = await ok(
            http, "tasks_record", task_id="code-agent", status="success", started_at=T0
        )
        assert (await ok(stdio, "tasks_get", span_id=written_over_http["span_id"]))["document"]["id"]
        assert await count_executions(stdio) == await count_executions(http) == 2


async def test_stdio_in_read_only_mode_offers_only_the_read_tools(database_url: str) -> None:
    async with _stdio_client(database_url, "--read-only") as stdio:
        names = {tool.name for tool in (await stdio.list_tools()).tools}
    assert names == {spec.name for spec in READ_TOOLS}


@pytest.fixture
def served_by_cli(database_url: str, tmp_path: Path) -> Iterator[ServerProcess]:
    """`task-history serve` as a subprocess on this test's database."""
    with serve_process(database_url, tmp_path / "serve.log") as process:
        yield process


@pytest.mark.parametrize("mode", ["auto", "legacy"])
async def test_task_history_serve_answers_mcp_clients(served_by_cli: ServerProcess, mode: str) -> None:
    async with Client(served_by_cli.mcp_url, mode=mode) as client:
        await fail_once(client, "served")
        assert await count_executions(client) == 1


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(cli_command(*args), env=cli_env(), capture_output=True, text=True, timeout=60)


async def test_the_terminal_commands_read_what_the_server_wrote(
    http_server: RunningServer, database_url: str
) -> None:
    async with Client(http_server.mcp_url) as client:
        failed = await fail_once(client, "nightly_ingest", "connection reset")
    db = ("--db", database_url)
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
