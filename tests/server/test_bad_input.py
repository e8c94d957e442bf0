"""Every malformed call is a tool error that says what was wrong and how to fix it; nothing is written
and the server keeps answering."""

from __future__ import annotations

import base64
import json
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


def with_numbers(cursor: str, number: int) -> str:
    """`cursor` (base64url JSON: numbers, then a digest) with every number replaced by `number`."""
    *numbers, digest = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
    forged = [number if isinstance(n, int) else n for n in numbers]
    return base64.urlsafe_b64encode(json.dumps([*forged, digest]).encode()).decode().rstrip("=")


async def test_a_real_cursor_with_its_numbers_past_64_bits_is_a_readable_error(
    connect: Callable[..., Client],
) -> None:
    """Its digest matches, so only the numbers give it away: they once reached SQLite's bind
    (OverflowError, the SDK's opaque "Error executing tool") or sliced a trace's answer to nothing."""
    failed = {"status": "failed", "error": {"type": "E", "message": "m"}}
    async with connect() as client:
        trace = (await ok(client, "tasks_start", task_id="t"))["trace_id"]
        for n in range(40):  # a trace too long for a 1,000-token answer: its answer has a cursor
            event = {"worker_id": "w", "note": f"{n} " + "x" * 200}
            await ok(client, "tasks_log_event", event_type="worker_progress", task_id="t", data=event)
        for n in range(3):
            await ok(client, "tasks_record", task_id=f"f{n}", started_at=T0, **failed)
        pages = {
            "tasks_list": {"limit": 1},
            "tasks_last_failed": {"limit": 1},
            "tasks_by_trace": {"trace_id": trace, "max_tokens": 1000},
        }
        for tool, arguments in pages.items():
            cursor = (await ok(client, tool, **arguments))["next_cursor"]
            assert cursor, tool
            for number in (10**30, 10**6):  # past 64 bits; in range but past the end of a trace
                forged = {**arguments, "cursor": with_numbers(cursor, number)}
                if tool != "tasks_by_trace" and number == 10**6:
                    continue  # a position in range is a valid (empty) page of a list
                await assert_readable_error(client, tool, forged, ["cursor", "next_cursor"])


async def test_a_retry_cannot_start_before_the_attempt_it_retries(connect: Callable[..., Client]) -> None:
    async with connect() as client:
        first = await ok(client, "tasks_start", task_id="t", started_at="2025-11-20T00:00:00Z")
        failure = {"type": "TimeoutError", "message": "slow"}
        await ok(client, "tasks_finish", span_id=first["span_id"], status="failed", error=failure)
        early = {"task_id": "t", "retry_of": first["span_id"], "started_at": "2025-11-19T00:00:00Z"}
        await assert_readable_error(
            client, "tasks_start", early, ["started_at", "before the attempt it retries"]
        )
        assert await count_executions(client) == 1
        retry = await ok(client, "tasks_start", task_id="t", retry_of=first["span_id"])
        assert retry["attempt"] == 2


async def test_child_work_runs_on_its_parents_trace(connect: Callable[..., Client]) -> None:
    async with connect() as client:
        parent = await ok(client, "tasks_start", task_id="t")
        other_trace = "550e8400-e29b-41d4-a716-446655440000"
        child = {"task_id": "t", "parent_span_id": parent["span_id"], "trace_id": other_trace}
        await assert_readable_error(
            client, "tasks_start", child, ["trace_id", "of its parent", "Omit trace_id"]
        )
        same = await ok(client, "tasks_start", task_id="t", parent_span_id=parent["span_id"])
        assert same["trace_id"] == parent["trace_id"]
