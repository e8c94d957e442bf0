"""Paging back through rows that share a timestamp. Importers give every attempt of a run the same
started_at and lineage logs have one-second resolution, so ties are normal: a page boundary inside
a tie must neither repeat nor lose a row. The tools page with a keyset cursor on (time, seq), never
with a strict `until` on the time alone."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from mcp import Client
from tool_support import assert_readable_error, ok

Connect = Callable[..., Client]
TIE = "2025-11-04T18:29:12Z"
TASK = "tie-task"


def _step_id(step: dict[str, Any]) -> str:
    return step["span_id"] if step["kind"] == "execution" else step["name"]


async def _tied_story(client: Client) -> None:
    """60 steps of one task, 50 of them at one instant: 40 events and 10 runs at TIE, then 10
    events a second apart."""
    for n in range(40):
        await ok(client, "tasks_log_event", event_type=f"myorg.tick_{n}", task_id=TASK, ts=TIE)
    for _ in range(10):
        await ok(client, "tasks_start", task_id=TASK, started_at=TIE)
    for n in range(10):
        at = f"2025-11-04T18:29:{13 + n}Z"
        await ok(client, "tasks_log_event", event_type=f"myorg.tick_{40 + n}", task_id=TASK, ts=at)


async def _page_back(client: Client, **arguments: Any) -> tuple[list[str], list[dict[str, Any]]]:
    """Every step, by following next_cursor from the most recent page to the first."""
    pages: list[dict[str, Any]] = []
    page = await ok(client, "tasks_timeline", task_id=TASK, **arguments)
    while True:
        pages.append(page)
        assert page["returned"] > 0, page
        if page["next_cursor"] is None:
            break
        assert page["truncated"] and "cursor=next_cursor" in page["rest"]
        page = await ok(client, "tasks_timeline", task_id=TASK, cursor=page["next_cursor"], **arguments)
    ids = [_step_id(s) for p in reversed(pages) for s in p["steps"]]
    return ids, pages


async def test_the_timeline_pages_through_a_tie_with_every_step_exactly_once(connect: Connect) -> None:
    async with connect() as client:
        await _tied_story(client)
        whole = await ok(client, "tasks_timeline", task_id=TASK, max_tokens=16_000)
        ids, pages = await _page_back(client, max_tokens=1000)
        await assert_readable_error(
            client, "tasks_timeline", {"task_id": "other", "cursor": pages[0]["next_cursor"]}, ["cursor"]
        )
    assert whole["total"] == whole["returned"] == 60 and not whole["truncated"]
    assert len(pages) > 2  # the tie of 50 spans several pages
    assert ids == [_step_id(s) for s in whole["steps"]]  # every step once, in order, no gap
    assert len(set(ids)) == 60
    assert pages[-1]["total"] == pages[-1]["returned"]  # the last page says it is the beginning


async def _tied_failures(client: Client) -> None:
    """12 failures that all started at TIE (as an importer writes a run's attempts), each with its
    own stack, and one older failure."""
    for n in range(13):
        started = await ok(
            client, "tasks_start", task_id=TASK, started_at=TIE if n else "2025-11-04T18:00:00Z"
        )
        error = {"type": "TimeoutError", "message": f"attempt {n}", "stack": f'File "job{n}.py", line 3'}
        await ok(client, "tasks_finish", span_id=started["span_id"], status="failed", error=error)


async def _failures_paged(client: Client, **arguments: Any) -> list[str]:
    spans: list[str] = []
    page = await ok(client, "tasks_last_failed", **arguments)
    while True:
        assert page["failures"], page  # a budget never empties the list
        spans += [f["span_id"] for f in page["failures"]]
        if not page["has_more"]:
            assert page.get("next_cursor") is None
            return spans
        assert page["next_cursor"], page
        page = await ok(client, "tasks_last_failed", cursor=page["next_cursor"], **arguments)


@pytest.mark.parametrize("unique_errors", [False, True])
async def test_last_failed_pages_through_failures_that_share_a_started_at(
    connect: Connect, unique_errors: bool
) -> None:
    async with connect() as client:
        await _tied_failures(client)
        whole = await ok(client, "tasks_last_failed", limit=50, unique_errors=unique_errors)
        by_limit = await _failures_paged(client, limit=5, unique_errors=unique_errors)
        by_budget = await _failures_paged(
            client, limit=50, max_tokens=1000, detail="summary", unique_errors=unique_errors
        )
        first = await ok(client, "tasks_last_failed", limit=5, unique_errors=unique_errors)
        text = (
            (await client.call_tool("tasks_last_failed", {"limit": 5, "unique_errors": unique_errors}))
            .content[0]
            .text
        )
        await assert_readable_error(
            client, "tasks_last_failed", {"cursor": first["next_cursor"], "task_id": "other"}, ["cursor"]
        )
    expected = [f["span_id"] for f in whole["failures"]]
    assert len(expected) == 13 and whole["total_failures"] == 13
    assert by_limit == expected and by_budget == expected  # each failure once, in order, no gap
    assert f'cursor="{first["next_cursor"]}"' in text.splitlines()[0]  # the text names it too
