"""The CLI in-process: settings flags, the read commands' tables and --json, exit codes; on a SQLite
file and on PostgreSQL (`database_url`, tests/conftest.py)."""

from __future__ import annotations

import asyncio
import gc
import json
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from mcp import Client

from config import SETTINGS_SPEC, load_settings
from server.app import build_server, open_store
from server.cli import SERVING_GC_THRESHOLDS, build_parser, main, open_bind_problem
from server.cli_admin import shown_url
from store.models import ErrorInput, FinishRequest, RecordRequest, StartRequest

T0 = "2025-11-04T18:29:12Z"


@pytest.fixture
def db(database_url: str, monkeypatch: pytest.MonkeyPatch) -> str:
    """A database with one success and one failure, written through the real Store."""
    for name in [spec.env_var for spec in SETTINGS_SPEC] + ["TASK_HISTORY_CONFIG"]:
        monkeypatch.delenv(name, raising=False)
    asyncio.run(_fill(database_url))
    return database_url


async def _fill(path: str) -> None:
    async with await open_store(load_settings({"database_url": path}, environ={})) as store:
        await store.record(RecordRequest(task_id="daily_reflection", status="success", started_at=T0))
        started = await store.start(StartRequest(task_id="nightly_ingest"))
        error = ErrorInput(type="TimeoutError", message="connection reset")
        await store.finish(FinishRequest(span_id=started.execution.span_id, status="failed", error=error))


def _run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_list_prints_a_table_newest_first(db: str, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = _run(capsys, "list", "--db", db)
    assert code == 0
    lines = out.splitlines()
    assert lines[0].split()[:3] == ["STARTED", "STATUS", "TASK"]
    assert "nightly_ingest" in lines[2] and "daily_reflection" in lines[3]
    assert "2 of 2 matching executions" in out


def test_list_json_is_the_tools_structured_content(db: str, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = _run(capsys, "list", "--db", db, "--status", "failed", "--json")
    page = json.loads(out)
    assert code == 0 and page["total"] == 1 and page["executions"][0]["error"]["type"] == "TimeoutError"


def test_last_failed_then_trace_then_get_walk_from_a_failure_to_its_record(
    db: str, capsys: pytest.CaptureFixture[str]
) -> None:
    _, out, _ = _run(capsys, "last-failed", "--db", db, "--json")
    failure = json.loads(out)["failures"][0]
    _, table, _ = _run(capsys, "last-failed", "--db", db)
    assert "COUNT" in table and "TimeoutError: connection reset" in table
    _, trace, _ = _run(capsys, "trace", failure["trace_id"], "--db", db)
    assert "final status failed" in trace and failure["span_id"] in trace
    code, detail, _ = _run(capsys, "get", failure["span_id"], "--db", db)
    assert code == 0 and "stack_hash" in detail and "connection reset" in detail


async def _fail_three_more(path: str) -> None:
    async with await open_store(load_settings({"database_url": path}, environ={})) as store:
        for n in range(3):
            started = await store.start(StartRequest(task_id=f"flaky-{n}"))
            error = ErrorInput(type="KeyError", message=f"missing key {n}")
            await store.finish(FinishRequest(span_id=started.execution.span_id, status="failed", error=error))


async def _tool_page(path: str, arguments: dict[str, object]) -> dict[str, Any]:
    async with Client(build_server(load_settings({"database_url": path}, environ={}))) as client:
        result = await client.call_tool("tasks_last_failed", arguments)
    assert not result.is_error and result.structured_content is not None
    return result.structured_content


def test_last_failed_pages_to_older_failures_with_the_cursor_it_prints(
    db: str, capsys: pytest.CaptureFixture[str]
) -> None:
    asyncio.run(_fail_three_more(db))  # four failures in all, the oldest nightly_ingest's
    code, first, _ = _run(capsys, "last-failed", "--db", db, "--limit", "3")
    assert code == 0 and "3 most recent of 4 failures." in first
    [cursor] = [line.split("add --cursor ")[1] for line in first.splitlines() if "add --cursor" in line]
    code, older, _ = _run(capsys, "last-failed", "--db", db, "--limit", "3", "--cursor", cursor)
    assert code == 0 and "nightly_ingest" in older and "flaky-" not in older
    assert "--cursor" not in older  # the last page says no more
    _, as_json, _ = _run(capsys, "last-failed", "--db", db, "--limit", "3", "--json")
    assert json.loads(as_json)["next_cursor"] == cursor
    # It is the tool's own cursor: the page goes on in an MCP client.
    in_client = asyncio.run(_tool_page(db, {"limit": 3, "cursor": cursor}))
    assert [f["task_id"] for f in in_client["failures"]] == ["nightly_ingest"]
    # A cursor is bound to the flags it was printed under.
    code, _, err = _run(
        capsys, "last-failed", "--db", db, "--limit", "3", "--unique-errors", "--cursor", cursor
    )
    assert code == 2 and "cursor" in err and "different call" in err


def test_an_unknown_span_exits_1_with_the_reason(db: str, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = _run(capsys, "get", "no-such-span", "--db", db)
    assert code == 1 and "no execution with span_id no-such-span" in err


def test_a_naive_timestamp_exits_2_naming_the_flag(db: str, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = _run(capsys, "list", "--db", db, "--since", "2025-11-04T00:00:00")
    assert code == 2 and "since" in err and "timezone" in err
    code, _, err = _run(capsys, "last-failed", "--db", db, "--until", "2025-13-01T00:00:00Z")
    assert code == 2 and "until" in err


def test_a_bad_setting_exits_2_naming_the_flag(db: str, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = _run(capsys, "list", "--db", db, "--max-text-chars", "lots")
    assert code == 2 and "--max-text-chars" in err


def test_every_setting_has_a_cli_flag_in_the_help(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        build_parser().parse_args(["serve", "--help"])
    help_text = capsys.readouterr().out
    for flag in [spec.cli_flag for spec in SETTINGS_SPEC] + ["--db", "--config"]:
        assert flag in help_text, flag
    flat = " ".join(help_text.split())
    assert "[TASK_HISTORY_TOKEN; default none]" in flat and "default ''" not in flat  # as README says


def test_serving_a_public_address_needs_a_token() -> None:
    local = load_settings({}, environ={})
    public = load_settings({"host": "0.0.0.0", "token": "t0ken"}, environ={})
    assert open_bind_problem(local) is None and open_bind_problem(public) is None
    exposed = public.model_copy(update={"token": ""})  # what the settings model itself refuses to build
    assert "not a loopback address" in (open_bind_problem(exposed) or "")


def test_a_limit_out_of_range_exits_2(db: str, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = _run(capsys, "list", "--db", db, "--limit", "0")
    assert code == 2 and "between 1 and 100" in err
    assert "Correct --limit and run task-history list again." in err


@pytest.mark.parametrize(
    ("argv", "says"),
    [
        (["list", "--cursor", "garbled"], ["--cursor:", "the cursor printed under the previous page"]),
        (["list", "--since", "2025-11-04T00:00:00"], ["- --since:", "task-history list --help"]),
        (["last-failed", "--limit", "99"], ["--limit:", "run task-history last-failed again"]),
        (["get", "no-such-span"], ["Run task-history list or task-history last-failed"]),
        (["trace", " "], ["TRACE_ID: is blank", "task-history list"]),
    ],
)
def test_errors_name_the_flags_and_commands_a_terminal_user_types(
    db: str, capsys: pytest.CaptureFixture[str], argv: list[str], says: list[str]
) -> None:
    code, _, err = _run(capsys, *argv, "--db", db)
    assert code in (1, 2)
    for words in says:
        assert words in err, err
    for mcp_word in ("next_cursor", "input schema", "tasks_list", "tasks_last_failed", "call list"):
        assert mcp_word not in err, err


def test_a_database_that_cannot_be_opened_exits_1_naming_the_path(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, err = _run(capsys, "list", "--db", str(tmp_path))  # a directory, not a file
    assert code == 1 and "cannot open the database" in err and str(tmp_path) in err


def test_an_unreachable_postgresql_server_exits_1_naming_where_it_was_sought(
    capsys: pytest.CaptureFixture[str],
) -> None:
    with socket.socket() as probe:  # a port nobody listens on: bound, never listening
        probe.bind(("127.0.0.1", 0))
        url = f"postgresql://th:hunter2@127.0.0.1:{probe.getsockname()[1]}/test"
        code, _, err = _run(capsys, "list", "--db", url)
    assert code == 1 and "PostgreSQL" in err and "127.0.0.1" in err and "hunter2" not in err


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("postgresql://th:hunter2@db:5432/h", "postgresql://th:***@db:5432/h"),
        ("postgresql://db/h?user=th&password=hunter2", "postgresql://db/h?user=th&password=***"),
        ("postgresql://th@db/h?options=-csearch_path%3Dx", "postgresql://th@db/h?options=-csearch_path%3Dx"),
        ("./data/task-history.db", "./data/task-history.db"),
    ],
)
def test_database_urls_are_shown_without_their_password(url: str, shown: str) -> None:
    assert shown_url(url) == shown


@pytest.fixture
def unfrozen() -> Iterator[None]:
    """Gives the test process its collector back: `serve` freezes every object alive at the time
    and raises the collection thresholds."""
    thresholds = gc.get_threshold()
    gc.unfreeze()
    yield
    gc.unfreeze()
    gc.set_threshold(*thresholds)


@pytest.mark.usefixtures("unfrozen")
def test_serve_leaves_its_start_up_heap_out_of_garbage_collection_and_collects_less_often(
    db: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The app is built, then frozen (server.cli.tune_collector_for_serving), then served."""
    import uvicorn

    seen: dict[str, object] = {}

    def run(app: object, **options: object) -> None:
        seen.update(app=app, frozen=gc.get_freeze_count(), thresholds=gc.get_threshold(), **options)

    monkeypatch.setattr(uvicorn, "run", run)
    assert main(["serve", "--db", db, "--port", "8765"]) == 0
    assert seen["port"] == 8765 and callable(seen["app"])
    assert isinstance(seen["frozen"], int) and seen["frozen"] > 10_000  # the modules and schemas, at least
    assert seen["thresholds"] == SERVING_GC_THRESHOLDS != (700, 10, 10)


def test_get_shows_the_record_in_full_as_tasks_get_does(
    database_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    stack = "Traceback (most recent call last):\n" + '  File "job.py", line 7, in run\n' * 400
    request = RecordRequest(
        task_id="t", status="failed", started_at=T0, result="partial output " * 200,
        error=ErrorInput(type="ValueError", message="bad row", stack=stack),
        io={"files_written": ["out/a.json"]}, usage={"input_tokens": 10, "output_tokens": 5},
    )  # fmt: skip

    async def record() -> str:
        async with await open_store(load_settings({"database_url": database_url}, environ={})) as store:
            return (await store.record(request)).execution.span_id

    span_id = asyncio.run(record())
    code, out, _ = _run(capsys, "get", span_id, "--db", database_url, "--json")
    structured = json.loads(out)["document"]["content"]["structured"]
    assert code == 0 and json.loads(out)["detail"] == "full"
    assert structured["result"] == request.result  # 3,000 characters: under the full cap, whole
    _, text, _ = _run(capsys, "get", span_id, "--db", database_url)
    assert "files_written: out/a.json" in text and "usage: input_tokens 10, output_tokens 5" in text
    assert "\nstack:\nTraceback (most recent call last):" in text and request.result in text
    # The stack (14,000 characters) is over the full cap: clipped, and the view says where it all is.
    assert "Clipped: document.content.structured.error.stack." in text
    assert f"task-history://execution/{span_id}" in text


def test_output_cut_short_by_its_reader_ends_quietly(tmp_path: Path) -> None:
    """`task-history list --json | head`: the pipe closes early; no BrokenPipeError traceback."""
    path = str(tmp_path / "many.db")

    async def fill() -> None:
        async with await open_store(load_settings({"database_url": path}, environ={})) as store:
            for n in range(100):  # ~150 KB of JSON, far more than a pipe holds
                await store.record(RecordRequest(task_id=f"t{n}", status="success", started_at=T0))

    asyncio.run(fill())
    command = [
        str(Path(sys.executable).parent / "task-history"),
        "list",
        "--db",
        path,
        "--limit",
        "100",
        "--json",
    ]
    with subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE) as process:
        assert process.stdout is not None and process.stderr is not None
        assert process.stdout.read(10).startswith(b"{")
        process.stdout.close()
        errors = process.stderr.read().decode()
        assert process.wait(timeout=60) == 0, errors
    assert "Traceback" not in errors and "BrokenPipe" not in errors


def test_an_unknown_flag_is_refused_in_the_commands_own_usage(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["list", "--no-such-flag", "x"])
    err = capsys.readouterr().err
    assert exited.value.code == 2
    assert "task-history list: error: unrecognized arguments: --no-such-flag x" in err
    assert "usage: task-history list" in err and "COMMAND ..." not in err
