"""Tool logic over a real Store: what each tool writes, what the read tools answer, and the text
rendering that comes with the structured content."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from mcp import Client
from tool_support import (
    SEED_TASK,
    check_seed_000_trace,
    count_executions,
    fail_once,
    ok,
    text_of,
    walk_seed_000,
)

from config import Settings
from store import Store
from store.models import RecordRequest
from store.sqlite.queries import COUNT_CAP

Connect = Callable[..., Client]
T0 = "2025-11-04T18:29:12Z"


async def test_start_then_finish_returns_ids_duration_and_a_short_text(connect: Connect) -> None:
    async with connect() as client:
        result = await client.call_tool("tasks_start", {"task_id": "daily_reflection", "task_name": "Daily"})
        started = result.structured_content
        assert started is not None and started["attempt"] == 1 and not started["duplicate"]
        assert started["span_id"] in result.content[0].text and "tasks_finish" in result.content[0].text
        finished = await ok(
            client, "tasks_finish", span_id=started["span_id"], status="success", result="done"
        )
        assert finished["status"] == "success" and finished["duration_ms"] >= 0
        assert finished["stack_hash"] is None and finished["already_finished"] is False


async def test_the_text_rendering_is_short_and_not_the_json_dump(connect: Connect) -> None:
    async with connect() as client:
        for n in range(3):
            await ok(client, "tasks_record", task_id=f"job-{n}", status="success", started_at=T0)
        result = await client.call_tool("tasks_list", {})
    text = result.content[0].text
    assert text.startswith("3 of 3 matching executions")
    assert not text.lstrip().startswith("{") and len(text) < 1500


async def test_finishing_twice_with_the_same_outcome_changes_nothing(connect: Connect) -> None:
    async with connect() as client:
        started = await ok(client, "tasks_start", task_id="t")
        await ok(client, "tasks_finish", span_id=started["span_id"], status="success")
        again = await ok(client, "tasks_finish", span_id=started["span_id"], status="success")
        assert again["already_finished"] is True
        assert await count_executions(client) == 1


async def test_a_failing_task_shows_in_last_failed_with_its_error_pattern(connect: Connect) -> None:
    async with connect() as client:
        finished = await fail_once(client, "nightly_ingest", "connection reset")
        assert finished["status"] == "failed" and finished["stack_hash"]
        await ok(client, "tasks_record", task_id="nightly_ingest", status="success", started_at=T0)
        failed = await ok(client, "tasks_last_failed")
        assert failed["total_failures"] == 1 and failed["failures"][0]["span_id"] == finished["span_id"]
        [pattern] = failed["error_patterns"]
        assert pattern["stack_hash"] == finished["stack_hash"] and pattern["count"] == 1
        assert pattern["error_type"] == "TimeoutError" and pattern["example_trace_id"] == finished["trace_id"]


async def test_unique_errors_keeps_one_failure_per_stack_hash(connect: Connect) -> None:
    async with connect() as client:
        for _ in range(3):
            await fail_once(client, "flaky", "same failure")
        await fail_once(client, "other", "different failure")
        everything = await ok(client, "tasks_last_failed")
        unique = await ok(client, "tasks_last_failed", unique_errors=True)
    assert everything["total_failures"] == 4 and len(everything["failures"]) == 4
    assert len(unique["failures"]) == len({f["error"]["stack_hash"] for f in unique["failures"]})


async def test_a_retry_chain_stays_on_one_trace_with_rising_attempts(connect: Connect) -> None:
    async with connect() as client:
        first = await fail_once(client, "flaky")
        second = await fail_once(client, "flaky", retry_of=first["span_id"])
        third_start = await ok(client, "tasks_start", task_id="flaky", retry_of=second["span_id"])
        await ok(client, "tasks_finish", span_id=third_start["span_id"], status="success")
        trace = await ok(client, "tasks_by_trace", trace_id=first["trace_id"])
    assert [e["attempt"] for e in trace["executions"]] == [1, 2, 3]
    assert {e["trace_id"] for e in trace["executions"]} == {first["trace_id"]}
    assert trace["executions"][2]["retry_of"] == second["span_id"]
    assert trace["retry_count"] == 2 and trace["final_status"] == "success"


async def test_the_same_idempotency_key_returns_the_first_execution_marked_duplicate(
    connect: Connect,
) -> None:
    async with connect() as client:
        first = await ok(client, "tasks_start", task_id="t", idempotency_key="run-2025-11-04")
        again = await ok(client, "tasks_start", task_id="t", idempotency_key="run-2025-11-04")
        assert again["duplicate"] is True and again["span_id"] == first["span_id"]
        assert await count_executions(client) == 1


async def test_recording_the_same_run_twice_stores_it_once(connect: Connect) -> None:
    async with connect() as client:
        args = {
            "task_id": "backfill",
            "status": "success",
            "started_at": T0,
            "ended_at": "2025-11-04T18:29:13Z",
        }
        first = await ok(client, "tasks_record", **args)
        again = await ok(client, "tasks_record", **args)
        assert first["duration_ms"] == 1000 and not first["duplicate"]
        assert again["duplicate"] and again["id"] == first["id"]
        assert await count_executions(client) == 1


async def test_the_seed_000_walk_builds_the_task_and_worker_executions_under_one_trace(
    connect: Connect,
) -> None:
    async with connect() as client:
        trace_id = await walk_seed_000(client)
        await check_seed_000_trace(client, trace_id)
        text = await text_of(client, "tasks_by_trace", trace_id=trace_id)
    assert "2 executions, 11 events" in text and "worker-scan-001" in text


async def test_an_out_of_order_event_is_stored_with_an_anomaly(connect: Connect) -> None:
    async with connect() as client:
        await ok(client, "tasks_log_event", event_type="task_created", task_id="t")
        logged = await ok(client, "tasks_log_event", event_type="task_unblocked", task_id="t")
    assert logged["anomaly"] and "not blocked" in logged["anomaly"]


async def test_tasks_get_returns_the_seed_002_document_with_the_events(connect: Connect) -> None:
    async with connect() as client:
        await walk_seed_000(client)
        task_run = (await ok(client, "tasks_list", task_id=SEED_TASK, limit=5))["executions"]
        span_id = next(e["span_id"] for e in task_run if e["worker_id"] is None)
        got = await ok(client, "tasks_get", span_id=span_id)
    document = got["document"]
    assert document["type"] == "TASK_EXECUTION" and document["id"].startswith("task_exec_")
    structured = document["content"]["structured"]
    assert structured["span_id"] == span_id and structured["status"] == "success"
    assert document["session_id"].startswith(f"task:{SEED_TASK}:")
    assert "task_started" in [event["event_type"] for event in got["events"]]


async def test_paging_with_next_cursor_visits_every_execution_exactly_once(connect: Connect) -> None:
    async with connect() as client:
        for n in range(25):
            await ok(client, "tasks_record", task_id=f"job-{n:02d}", status="success", started_at=T0)
        seen: list[str] = []
        page = await ok(client, "tasks_list", limit=10)
        while True:
            seen += [e["id"] for e in page["executions"]]
            assert page["total"] == 25 and page["returned"] == len(page["executions"])
            if not page["has_more"]:
                break
            page = await ok(client, "tasks_list", limit=10, cursor=page["next_cursor"])
    assert len(seen) == 25 == len(set(seen))


async def test_a_total_past_the_count_cap_says_at_least_with_its_thousands(
    connect: Connect, settings: Settings
) -> None:
    start = datetime(2025, 11, 4, tzinfo=UTC)
    async with await Store.open(settings.database_url) as store:
        runs = (
            RecordRequest(task_id="job", status="success", started_at=start + timedelta(seconds=n))
            for n in range(COUNT_CAP + 1)
        )
        await asyncio.gather(*(store.record(run) for run in runs))
    async with connect() as client:
        page = await ok(client, "tasks_list", limit=2)
        assert (page["total"], page["total_exact"], page["has_more"]) == (COUNT_CAP, False, True)
        text = await text_of(client, "tasks_list", limit=2)
    assert text.startswith(f"2 of at least {COUNT_CAP:,} matching executions"), text


async def test_list_filters_narrow_by_status_and_task(connect: Connect) -> None:
    async with connect() as client:
        await fail_once(client, "a")
        await ok(client, "tasks_record", task_id="a", status="success", started_at=T0)
        await ok(client, "tasks_record", task_id="b", status="success", started_at=T0)
        assert await count_executions(client, status="failed") == 1
        assert await count_executions(client, task_id="a") == 2
        assert await count_executions(client, task_id="a", since="2026-01-01T00:00:00Z") == 1


async def test_an_unknown_trace_is_an_empty_answer_that_says_so(connect: Connect) -> None:
    async with connect() as client:
        result = await client.call_tool(
            "tasks_by_trace", {"trace_id": "4f1c2d0e-0000-4000-8000-000000000000"}
        )
    assert not result.is_error
    content = result.structured_content
    assert content is not None
    shown = ("trace_id", "found", "executions", "events", "retry_count", "final_status")
    assert {k: content[k] for k in shown} == {
        "trace_id": "4f1c2d0e-0000-4000-8000-000000000000",
        "found": False,
        "executions": [],
        "events": [],
        "retry_count": 0,
        "final_status": None,
    }
    assert (content["returned"], content["total"], content["truncated"]) == (0, 0, False)
    assert "Nothing is recorded" in result.content[0].text
