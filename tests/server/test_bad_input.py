"""Every malformed call is a tool error that says what was wrong and how to fix it; nothing is written
and the server keeps answering."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from mcp import Client
from tool_support import BAD_CALLS, T0, assert_readable_error, count_executions, fails, ok


@pytest.mark.parametrize(("tool", "arguments", "fragments"), BAD_CALLS, ids=lambda v: str(v)[:40])
async def test_a_malformed_call_is_a_readable_tool_error_and_writes_nothing(
    connect: Callable[..., Client], tool: str, arguments: dict[str, Any], fragments: list[str]
) -> None:
    async with connect() as client:
        await ok(client, "tasks_record", task_id="baseline", status="success", started_at=T0)
        await assert_readable_error(client, tool, arguments, fragments)
        assert await count_executions(client) == 1  # nothing half-written; the server still answers


async def test_failing_without_an_error_says_which_fields_to_send_and_leaves_the_run_open(
    connect: Callable[..., Client],
) -> None:
    async with connect() as client:
        started = await ok(client, "tasks_start", task_id="t")
        text = await fails(client, "tasks_finish", {"span_id": started["span_id"], "status": "failed"})
        assert "error.type" in text and "error.message" in text
        assert await count_executions(client, status="running") == 1


async def test_sql_looking_strings_are_stored_verbatim(connect: Callable[..., Client]) -> None:
    nasty = "x'); DROP TABLE executions; --"
    async with connect() as client:
        recorded = await ok(
            client,
            "tasks_record",
            task_id=nasty,
            started_at=T0,
            status="failed",
            error={"type": "E", "message": nasty},
        )
        assert recorded["task_id"] == nasty
        assert (await ok(client, "tasks_list", task_id=nasty))["executions"][0]["error"]["message"] == nasty
        assert await count_executions(client) == 1


async def test_a_text_limit_from_the_settings_is_named_in_the_error(
    connect: Callable[..., Client], make_settings: Callable[..., Any]
) -> None:
    async with connect(make_settings(max_text_chars=1000)) as client:
        text = await fails(
            client,
            "tasks_record",
            {"task_id": "t", "started_at": T0, "status": "success", "result": "y" * 1001},
        )
    assert "result" in text and "1000" in text and "max_text_chars" in text
