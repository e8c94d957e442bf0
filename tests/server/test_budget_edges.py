"""The budget at its edges: the least max_tokens with long text, an answer that cannot fit even one
item, a page cut by the budget continuing from its own read, and later pages of a trace that grew.

Each case came from a walker that paged every tool to its end: the least budget at detail=full gave
empty pages whose cursor never moved, and a cut page's cursor came from a second read that could
see rows committed meanwhile."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from mcp import Client
from tool_support import ok

from server.budget import MIN_MAX_TOKENS, estimate_tokens

Connect = Callable[..., Client]
LONG_MESSAGE = "upstream did not answer " * 100  # 2,400 characters: over detail=full's 2,000 cap


async def answer(client: Client, tool: str, **arguments: Any) -> tuple[dict[str, Any], str]:
    """The structured content and the text block, with the answer checked against its budget."""
    result = await client.call_tool(tool, arguments)
    assert not result.is_error, result.content[0].text
    content, text = result.structured_content, result.content[0].text  # type: ignore[union-attr]
    assert content is not None
    assert estimate_tokens(content) + estimate_tokens(text) <= arguments["max_tokens"], tool
    return content, text


async def record_long_failures(client: Client, count: int = 3) -> list[dict[str, Any]]:
    recorded = []
    for n in range(count):
        error = {
            "type": "TimeoutError",
            "message": f"attempt {n}: {LONG_MESSAGE}",
            "stack": f'File "x{n}.py"',
        }
        recorded.append(
            await ok(
                client, "tasks_record", task_id="job", status="failed", error=error,
                started_at=f"2025-11-04T18:0{n}:00Z", ended_at=f"2025-11-04T18:0{n}:30Z",
                io={"files_written": ["out/a.json"]},
            )
        )  # fmt: skip
    return recorded


# (tool, arguments, the list of items, how to tell two items apart)
PAGED = [
    ("tasks_list", {}, "executions", "span_id"),
    ("tasks_last_failed", {}, "failures", "span_id"),
    ("tasks_timeline", {"task_id": "job"}, "steps", "at"),
    ("tasks_side_effects", {"file": "out/a.json"}, "matches", "span_id"),
]


async def test_the_least_budget_at_full_detail_pages_through_long_failures_one_at_least_at_a_time(
    connect: Connect,
) -> None:
    async with connect() as client:
        await record_long_failures(client)
        for tool, arguments, items, key in PAGED:
            seen: list[Any] = []
            cursor = None
            for _ in range(10):
                page = {**arguments, "detail": "full", "max_tokens": MIN_MAX_TOKENS}
                content, text = await answer(client, tool, **page, **({"cursor": cursor} if cursor else {}))
                shown = content[items]
                assert shown, f"{tool} answered no {items}: {text}"
                seen += [row.get(key) or row.get("execution", {}).get(key) for row in shown]
                assert 'cursor="None"' not in text
                cursor = content.get("next_cursor")
                if not cursor:
                    break
            assert len(seen) == len(set(seen)), (tool, seen)
            # every row of the three failures, page by page (the timeline's steps are the three runs)
            assert len(seen) == 3, (tool, seen)
        patterns, _ = await answer(client, "tasks_failure_patterns", detail="full", max_tokens=MIN_MAX_TOKENS)
        assert patterns["groups"]


async def test_an_answer_with_room_for_no_item_says_what_would_show_one_and_offers_no_cursor(
    connect: Connect,
) -> None:
    """Identifiers at their length limits, in three-byte characters, leave no room for even one row
    within the least budget: the answer says so instead of handing out a cursor that goes nowhere."""
    wide = {"task_id": "任" * 200, "task_name": "名" * 500, "actor": "人" * 200, "task_type": "型" * 200}
    async with connect() as client:
        error = {"type": "誤" * 300, "message": "m"}
        await ok(
            client, "tasks_record", **wide, status="failed", error=error, started_at="2025-11-04T18:00:00Z"
        )
        for detail in ("summary", "standard", "full"):
            content, text = await answer(client, "tasks_list", detail=detail, max_tokens=MIN_MAX_TOKENS)
            assert content["executions"] == [] and content["total"] == 1 and content["truncated"]
            assert content["next_cursor"] is None and "Not one item fits max_tokens=1000" in content["rest"]
            assert 'cursor="' not in text and "Not one item fits" in text
        roomy, _ = await answer(client, "tasks_list", detail="summary", max_tokens=4_000)
        assert len(roomy["executions"]) == 1


async def test_a_page_cut_by_the_budget_continues_right_after_its_last_row(connect: Connect) -> None:
    async with connect() as client:
        for n in range(30):
            await ok(
                client, "tasks_record", task_id=f"t{n % 3}", status="success", result="r" * 300,
                started_at=f"2025-11-04T18:{n:02d}:00Z", io={"files_written": ["out/shared.txt"]},
            )  # fmt: skip
        everything = [e["span_id"] for e in (await ok(client, "tasks_list", limit=100))["executions"]]
        cases = (
            ("tasks_list", {}, "executions"),
            ("tasks_side_effects", {"file": "out/shared.txt"}, "matches"),
        )
        for tool, arguments, items in cases:
            first, _ = await answer(client, tool, limit=100, max_tokens=MIN_MAX_TOKENS, **arguments)
            kept = len(first[items])
            assert 0 < kept < 30 and first["next_cursor"]
            second = await ok(client, tool, limit=100, cursor=first["next_cursor"], **arguments)
            spans = [row.get("span_id") or row["execution"]["span_id"] for row in second[items]]
            assert spans == everything[kept:], tool


async def test_later_pages_of_a_trace_tell_its_outcome_as_the_first_page_saw_it(connect: Connect) -> None:
    async with connect() as client:
        started = await ok(client, "tasks_start", task_id="flaky")
        for n in range(40):
            await ok(
                client, "tasks_log_event", event_type="acme.progress", task_id="flaky",
                span_id=started["span_id"], data={"progress": n, "note": "n" * 200},
            )  # fmt: skip
        error = {"type": "OSError", "message": "disk full"}
        await ok(client, "tasks_finish", span_id=started["span_id"], status="failed", error=error)
        first, _ = await answer(
            client, "tasks_by_trace", trace_id=started["trace_id"], max_tokens=MIN_MAX_TOKENS
        )
        assert first["next_cursor"] and (first["retry_count"], first["final_status"]) == (0, "failed")
        retry = await ok(client, "tasks_start", task_id="flaky", retry_of=started["span_id"])
        await ok(client, "tasks_finish", span_id=retry["span_id"], status="success")
        cursor, pages = first["next_cursor"], []
        while cursor:
            page = await ok(client, "tasks_by_trace", trace_id=started["trace_id"], cursor=cursor)
            pages.append(page)
            cursor = page["next_cursor"]
        fresh = await ok(client, "tasks_by_trace", trace_id=started["trace_id"])
    assert pages and all((p["retry_count"], p["final_status"]) == (0, "failed") for p in pages)
    assert (fresh["retry_count"], fresh["final_status"]) == (1, "success")


async def test_tasks_get_holds_its_record_when_no_event_fits_and_points_at_the_whole(
    connect: Connect,
) -> None:
    """The document is tasks_get's item: events the budget leaves out leave an answer, not an empty
    page, so its rest names the record's resource rather than saying nothing fits. (A document that
    nearly fills the budget on its own: a long name, error type and message, and a result.)"""
    async with connect() as client:
        task = {"task_id": "t" * 20, "task_name": "名" * 100, "actor": "a" * 20, "task_type": "y" * 20}
        started = await ok(client, "tasks_start", **task)
        for n in range(3):
            await ok(
                client, "tasks_log_event", event_type="acme.note", task_id=task["task_id"],
                span_id=started["span_id"], data={"n": n},
            )  # fmt: skip
        error = {"type": "E" * 10, "message": "boom " * 400}
        await ok(
            client,
            "tasks_finish",
            span_id=started["span_id"],
            status="failed",
            error=error,
            result="r" * 3000,
        )
        content, _ = await answer(client, "tasks_get", span_id=started["span_id"], max_tokens=MIN_MAX_TOKENS)
    assert content["document"]["content"]["structured"]["span_id"] == started["span_id"]
    assert content["events"] == [] and content["omitted"] == 3
    assert "Not one item fits" not in content["rest"]
    assert f"task-history://execution/{started['span_id']}" in content["rest"]
