"""The debugging tools, resources and prompt through the SDK's in-memory client: what
tasks_failure_patterns, tasks_stats, tasks_timeline and tasks_side_effects answer, the errors a
model can fix, the execution and trace resources, and the debug_recent_failures prompt."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from mcp import Client
from mcp.shared.exceptions import MCPError
from tool_support import (
    HANDOFF,
    SEED_TASK,
    WORKER,
    assert_readable_error,
    fail_once,
    ok,
    text_of,
    walk_seed_000,
)

from config import Settings
from store import Store
from store.analysis import STORY_LIMIT_MAX
from store.models import EventRequest
from store.sqlite.queries import COUNT_CAP

Connect = Callable[..., Client]
T0 = "2025-11-04T18:29:12Z"


async def _failing_history(client: Client) -> dict[str, Any]:
    """Three failures of one kind (ids differ), one of another; the first is fixed by a retry."""
    first = await fail_once(client, "ingest", "user 1 missing")
    retry = await ok(client, "tasks_start", task_id="ingest", retry_of=first["span_id"])
    await ok(client, "tasks_finish", span_id=retry["span_id"], status="success")
    await fail_once(client, "ingest", "user 22 missing")
    await fail_once(client, "report", "user 333 missing")
    await fail_once(client, "report", "disk full")
    return first


async def test_failure_patterns_group_by_fingerprint_with_retry_fixes(connect: Connect) -> None:
    async with connect() as client:
        await _failing_history(client)
        answer = await ok(client, "tasks_failure_patterns")
        text = await text_of(client, "tasks_failure_patterns")
    assert (answer["total"], answer["total_failures"], answer["returned"]) == (2, 4, 2)
    top = answer["groups"][0]
    assert top["count"] == 3 and top["message"] == "user <n> missing" and top["fixed_by_retry"] == 1
    assert top["tasks_affected"] == 2 and sum(top["trend"]) == 3
    assert top["example"]["trace_id"] and answer["truncated"] is False
    assert text.startswith("2 of 2 failure groups (4 failures)") and "tasks_by_trace" in text


async def test_failure_patterns_page_with_their_cursor(connect: Connect) -> None:
    async with connect() as client:
        await _failing_history(client)
        first = await ok(client, "tasks_failure_patterns", limit=1)
        second = await ok(client, "tasks_failure_patterns", limit=1, cursor=first["next_cursor"])
        whole = await ok(client, "tasks_failure_patterns", limit=2)
        await assert_readable_error(
            client, "tasks_failure_patterns", {"cursor": first["next_cursor"], "task_id": "x"}, ["cursor"]
        )
    assert first["has_more"] and not second["has_more"]
    paged = [g["fingerprint"] for g in first["groups"] + second["groups"]]
    assert paged == [g["fingerprint"] for g in whole["groups"]] and len(set(paged)) == 2  # no repeat, no gap


async def test_stats_answer_one_row_or_one_per_group(connect: Connect) -> None:
    async with connect() as client:
        await _failing_history(client)
        overall = await ok(client, "tasks_stats", task_id="ingest")
        grouped = await ok(client, "tasks_stats", group_by="task_id")
        text = await text_of(client, "tasks_stats", group_by="task_id")
    [row] = overall["groups"]
    assert (row["runs"], row["success"], row["failed"], row["retries"]) == (3, 1, 2, 1)
    assert row["succeeded_after"] == {"2": 1} and row["durations"]["measured"] == 3
    assert [g["key"] for g in grouped["groups"]] == ["ingest", "report"] and grouped["total"] == 2
    assert "by task_id" in text and "p95" in text


async def test_the_timeline_tells_the_seed_000_story_with_workers_and_handoffs(connect: Connect) -> None:
    async with connect() as client:
        trace_id = await walk_seed_000(client)
        by_task = await ok(client, "tasks_timeline", task_id=SEED_TASK)
        by_trace = await ok(client, "tasks_timeline", trace_id=trace_id, detail="full")
        text = await text_of(client, "tasks_timeline", task_id=SEED_TASK)
    names = [s["name"] for s in by_task["steps"]]
    assert names[0] == "task_created" and "worker run" in names and "run" in names
    handoff = next(s for s in by_task["steps"] if s["name"] == "handoff_created")
    assert HANDOFF in handoff["note"] and all("gap_ms" in s for s in by_task["steps"][1:])
    worker = next(s for s in by_task["steps"] if s["name"] == "worker run")
    assert worker["worker_id"] == WORKER and worker["status"] == "success"
    assert by_task["returned"] == by_task["total"] == 13 and by_task["truncated"] is False
    assert any("data" in s for s in by_trace["steps"])  # event data at detail=full
    assert "Timeline of task task-001" in text and "handoff_created" in text


async def test_the_timeline_pages_back_with_its_cursor_and_until(connect: Connect) -> None:
    async with connect() as client:
        await walk_seed_000(client)
        whole = await ok(client, "tasks_timeline", task_id=SEED_TASK)
        small = await ok(client, "tasks_timeline", task_id=SEED_TASK, max_tokens=1000)
        assert small["truncated"] and small["omitted"] > 0 and "cursor=next_cursor" in small["rest"]
        earlier = await ok(client, "tasks_timeline", task_id=SEED_TASK, cursor=small["next_cursor"])
        until = await ok(client, "tasks_timeline", task_id=SEED_TASK, until=small["steps"][0]["at"])
    assert earlier["total"] == small["total"] - small["returned"] and not earlier["truncated"]
    steps = [(s["at"], s["name"], s.get("span_id")) for s in earlier["steps"] + small["steps"]]
    assert steps == [(s["at"], s["name"], s.get("span_id")) for s in whole["steps"]]  # no gap, no repeat
    assert until["total"] <= earlier["total"]  # until still bounds the window (strictly before it)


async def test_a_timeline_past_the_count_cap_says_its_total_is_a_lower_bound(
    connect: Connect, settings: Settings
) -> None:
    assert COUNT_CAP > STORY_LIMIT_MAX  # a capped count still tells a cut story from a whole one
    async with await Store.open(settings.database_url) as store:
        start = datetime(2025, 11, 4, tzinfo=UTC)
        notes = (
            EventRequest(event_type="myorg.progress", task_id="busy", ts=start + timedelta(minutes=n))
            for n in range(COUNT_CAP + 5)
        )
        await asyncio.gather(*(store.log_event(note) for note in notes))
    async with connect() as client:
        timeline = await ok(client, "tasks_timeline", task_id="busy")
        text = await text_of(client, "tasks_timeline", task_id="busy")
    assert (timeline["total"], timeline["total_exact"], timeline["truncated"]) == (COUNT_CAP, False, True)
    assert f"of at least {COUNT_CAP:,} steps" in text and timeline["next_cursor"]


@pytest.mark.parametrize(
    "arguments", [{}, {"task_id": "t", "trace_id": "4f1c2d0e-0000-4000-8000-000000000000"}]
)
async def test_the_timeline_needs_exactly_one_of_task_and_trace(
    connect: Connect, arguments: dict[str, Any]
) -> None:
    async with connect() as client:
        await assert_readable_error(
            client, "tasks_timeline", arguments, ["exactly one of task_id and trace_id"]
        )


async def test_side_effects_find_a_file_a_directory_and_a_tool(connect: Connect) -> None:
    async with connect() as client:
        io = {"files_written": ["reports/2025/summary.json"], "tool_calls": ["web_search"]}
        done = await ok(client, "tasks_record", task_id="writer", status="success", started_at=T0, io=io)
        by_file = await ok(client, "tasks_side_effects", file="reports/2025/summary.json")
        by_dir = await ok(client, "tasks_side_effects", file="reports/")
        by_tool = await ok(client, "tasks_side_effects", tool_call="web_search", detail="full")
        nothing = await text_of(client, "tasks_side_effects", tool_call="never_called")
        bare_dir = await ok(client, "tasks_side_effects", file="reports")
        bare_text = await text_of(client, "tasks_side_effects", file="reports/2025")
        elsewhere = await ok(client, "tasks_side_effects", file="reports", task_id="someone-else")
        no_dir = await ok(client, "tasks_side_effects", file="summary.json")
    assert [m["span_id"] for m in by_file["matches"]] == [done["span_id"]]
    assert by_dir["matches"][0]["kind"] == "dir" and by_dir["query"] == "directory reports/"
    assert by_tool["matches"][0]["tool_calls"] == ["web_search"]
    assert nothing == "No execution recorded the tool call never_called."
    assert bare_dir["matches"] == [] and "file='reports/'" in bare_dir["suggestion"]
    assert (
        bare_text.startswith("No execution recorded the file reports/2025.")
        and "'reports/2025/'" in bare_text
    )
    assert elsewhere["suggestion"] is None and no_dir["suggestion"] is None  # only for a dir with entries


@pytest.mark.parametrize("arguments", [{}, {"file": "a.txt", "tool_call": "grep"}])
async def test_side_effects_search_one_thing_at_a_time(connect: Connect, arguments: dict[str, Any]) -> None:
    async with connect() as client:
        await assert_readable_error(
            client, "tasks_side_effects", arguments, ["exactly one of file and tool_call"]
        )


async def test_the_resources_attach_one_execution_and_one_trace(connect: Connect) -> None:
    async with connect() as client:
        failed = await fail_once(client, "ingest", "boom " * 2000)
        templates = {t.uri_template for t in (await client.list_resource_templates()).resource_templates}
        execution = await client.read_resource(f"task-history://execution/{failed['span_id']}")
        trace = await client.read_resource(f"task-history://trace/{failed['trace_id']}")
        with pytest.raises(MCPError, match="No execution with span_id"):
            await client.read_resource("task-history://execution/no-such-span")
    assert templates == {
        "task-history://execution/{span_id}",
        "task-history://trace/{trace_id}",
        "task-history://event/{event_id}",
    }
    document = json.loads(execution.contents[0].text)["document"]  # type: ignore[union-attr]
    assert document["content"]["structured"]["error"]["message"] == "boom " * 2000  # never clipped
    body = json.loads(trace.contents[0].text)  # type: ignore[union-attr]
    assert body["trace_id"] == failed["trace_id"] and len(body["executions"]) == 1 and not body["truncated"]


async def test_clipped_event_data_names_the_event_resource_that_holds_all_of_it(connect: Connect) -> None:
    """An event logged before any run has no span, so tasks_get cannot show it: the clipped data
    names the event's own resource, which returns it whole."""
    data = {"description": "line of the task description\n" * 300}
    async with connect() as client:
        logged = await ok(
            client, "tasks_log_event", event_type="task_created", task_id="described", data=data
        )
        timeline = await ok(client, "tasks_timeline", task_id="described", detail="full")
        [step] = timeline["steps"]
        whole = step["data"]["whole"]
        body = json.loads((await client.read_resource(whole)).contents[0].text)  # type: ignore[union-attr]
        with pytest.raises(MCPError, match="No event with event_id"):
            await client.read_resource("task-history://event/no-such-event")
    assert whole == f"task-history://event/{logged['event_id']}" and "span_id" not in step
    assert "steps[].data" in timeline["clipped_fields"] and "data.whole" in timeline["rest"]
    assert body["data"] == data and body["event_type"] == "task_created"


async def test_an_event_resource_uri_encodes_the_event_id(connect: Connect) -> None:
    """A caller's event_id may hold '/', '?' or '#': the URI a clipped answer hands out still names it."""
    async with connect() as client:
        for n, event_id in enumerate(("build/42", "x?y#z", "100%")):
            await ok(
                client, "tasks_log_event", event_type="acme.note", task_id=f"t{n}", event_id=event_id,
                data={"blob": "z" * 5_000},
            )  # fmt: skip
            [step] = (await ok(client, "tasks_timeline", task_id=f"t{n}", detail="full"))["steps"]
            body = json.loads((await client.read_resource(step["data"]["whole"])).contents[0].text)  # type: ignore[union-attr]
            assert body["event_id"] == event_id and body["data"] == {"blob": "z" * 5_000}


async def test_the_prompt_walks_from_last_failed_to_one_tasks_list(connect: Connect) -> None:
    async with connect() as client:
        [prompt] = (await client.list_prompts()).prompts
        rendered = await client.get_prompt("debug_recent_failures", {"task_id": "nightly_ingest"})
    assert prompt.name == "debug_recent_failures" and {a.name for a in prompt.arguments or []} == {
        "task_id",
        "since",
    }
    text = rendered.messages[0].content.text  # type: ignore[union-attr]
    order = [
        text.index(tool)
        for tool in ("tasks_last_failed(", "tasks_failure_patterns(", "tasks_by_trace(", "tasks_list(")
    ]
    assert order == sorted(order) and "task_id='nightly_ingest'" in text and "rest" in text


async def test_every_read_answer_carries_its_own_fields_even_when_null(
    connect: Callable[..., Client],
) -> None:
    """The newer answers leave null fields out of their rows, never out of the answer itself: a client
    reads `rest` (and `next_cursor` where the tool pages) of every answer alike."""
    async with connect() as client:
        failure = {"type": "KeyError", "message": "user 7 missing"}
        recorded = await ok(
            client, "tasks_record", task_id="t", status="failed", started_at=T0, error=failure,
            io={"files_written": ["out/r.json"]},
        )  # fmt: skip
        calls = {
            "tasks_list": {}, "tasks_by_trace": {"trace_id": recorded["trace_id"]}, "tasks_last_failed": {},
            "tasks_get": {"span_id": recorded["span_id"]}, "tasks_failure_patterns": {}, "tasks_stats": {},
            "tasks_timeline": {"task_id": "t"}, "tasks_side_effects": {"file": "out/r.json"},
        }  # fmt: skip
        paging = {"tasks_list", "tasks_by_trace", "tasks_last_failed", "tasks_failure_patterns"}
        paging |= {"tasks_timeline", "tasks_side_effects"}
        for tool, arguments in calls.items():
            answer = await ok(client, tool, **arguments)
            assert "rest" in answer and answer["rest"] is None, (tool, answer.get("rest"))
            if tool in paging:
                assert "next_cursor" in answer and answer["next_cursor"] is None, tool
