"""Queries: filtered lists with keyset cursors, traces, recent failures and error patterns."""

from __future__ import annotations

import asyncio
import sqlite3
import traceback
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from store import InvalidInput, NotFound, Store
from store.models import ErrorInput, ExecutionFilter, FinishRequest, RecordRequest, StartRequest
from store.retention import retention_of
from store.sqlite.queries import COUNT_CAP

T0 = datetime(2025, 11, 1, tzinfo=UTC)


def real_stack(user_id: int) -> tuple[str, str]:
    def load_user(uid: int) -> None:
        raise KeyError(f"user {uid} missing")

    try:
        load_user(user_id)
    except KeyError as exc:
        return traceback.format_exc(), str(exc)
    raise AssertionError("unreachable")


async def record(store: Store, task_id: str, minute: int, status: str = "success", **extra: object) -> str:
    error = ErrorInput(type="KeyError", message=f"user {minute} missing") if status == "failed" else None
    req = RecordRequest(
        task_id=task_id,
        status=status,
        started_at=T0 + timedelta(minutes=minute),  # type: ignore[arg-type]
        ended_at=T0 + timedelta(minutes=minute, seconds=5),
        error=error,
        **extra,  # type: ignore[arg-type]
    )
    return (await store.record(req)).execution.span_id


async def test_lists_are_newest_first_and_cursors_walk_every_row_once(store: Store) -> None:
    spans = [await record(store, "t", minute) for minute in range(25)]
    seen: list[str] = []
    page = await store.list_executions(limit=10)
    while True:
        seen += [e.span_id for e in page.executions]
        assert page.total == 25 and page.total_exact and page.returned == len(page.executions)
        if not page.has_more:
            assert page.next_cursor is None
            break
        page = await store.list_executions(limit=10, cursor=page.next_cursor)
    assert seen == list(reversed(spans))


async def test_a_page_says_where_a_page_after_its_first_rows_starts_even_after_newer_rows_arrive(
    store: Store,
) -> None:
    """cursor_after(k) is for a reader whose budget kept k rows: it comes from this read's own
    positions, so rows recorded since (newest first, so ahead of the page) shift nothing."""
    spans = list(
        reversed([await record(store, "t", minute, io={"files_written": ["a.txt"]}) for minute in range(8)])
    )
    page = await store.list_executions(limit=6)
    effects = await store.side_effects("file", "a.txt", limit=6)
    for minute in range(100, 104):
        await record(store, "t", minute, io={"files_written": ["a.txt"]})
    for kept in (1, 3, 6):
        after = await store.list_executions(limit=10, cursor=page.cursor_after(kept))
        assert [e.span_id for e in after.executions] == spans[kept:]
        after_effects = await store.side_effects("file", "a.txt", limit=10, cursor=effects.cursor_after(kept))
        assert [m.execution.span_id for m in after_effects.matches] == spans[kept:]
    assert page.cursor_after(6) == page.next_cursor and page.cursor_after(0) is None


async def test_a_list_counts_up_to_the_cap_then_says_its_total_is_a_lower_bound(store: Store) -> None:
    await asyncio.gather(*(record(store, "t", minute) for minute in range(COUNT_CAP + 1)))
    page = await store.list_executions(limit=5)
    assert (page.total, page.total_exact, page.returned, page.has_more) == (COUNT_CAP, False, 5, True)
    at_the_cap = await store.list_executions(ExecutionFilter(since=T0 + timedelta(minutes=1)), limit=5)
    assert (at_the_cap.total, at_the_cap.total_exact) == (COUNT_CAP, True)


async def test_a_page_emptied_under_its_cursor_still_counts_the_matches(store: Store) -> None:
    day = 24 * 60
    await record(store, "t", 0)
    await record(store, "t", 3 * day)
    await record(store, "t", 3 * day + 1)
    first = await store.list_executions(limit=2)
    assert first.has_more and first.next_cursor
    batch, _ = await store.prune_traces(retention_of(1, 1, 1, now=T0 + timedelta(days=2)))
    assert (await store.prune(batch)).executions == 1  # the oldest run: the only one on page 2
    rest = await store.list_executions(limit=2, cursor=first.next_cursor)
    assert (rest.returned, rest.total, rest.total_exact, rest.has_more) == (0, 2, True, False)


async def test_a_row_whose_detail_holds_a_key_the_store_does_not_know_still_reads(db_path: Path) -> None:
    async with await Store.open(str(db_path)) as store:
        span = await record(store, "t", 0, attributes={"k": "v"})
    with sqlite3.connect(db_path) as conn:
        conn.execute("UPDATE executions SET detail = json_set(detail, '$.from_elsewhere', 1)")
    async with await Store.open(str(db_path)) as store:
        execution = (await store.get(span)).execution
    assert execution.attributes == {"k": "v"} and execution.span_id == span


@pytest.mark.parametrize(
    "filters, expected",
    [
        (ExecutionFilter(task_id="a"), 3),
        (ExecutionFilter(status="failed"), 2),
        (ExecutionFilter(task_type="report"), 1),
        (ExecutionFilter(actor="bot"), 1),
        (ExecutionFilter(since=T0 + timedelta(minutes=2)), 3),
        (ExecutionFilter(until=T0 + timedelta(minutes=2)), 2),
        (ExecutionFilter(task_id="a", status="failed"), 1),
        (ExecutionFilter(backfilled=False), 5),
    ],
)
async def test_each_filter_narrows_the_list(store: Store, filters: ExecutionFilter, expected: int) -> None:
    await record(store, "a", 0)
    await record(store, "a", 1, "failed")
    await record(store, "a", 2, task_type="report")
    await record(store, "b", 3, "failed", actor="bot")
    await record(store, "b", 4)
    page = await store.list_executions(filters)
    assert page.total == expected == page.returned


async def test_retrying_lists_running_executions_past_their_first_attempt(store: Store) -> None:
    first = (await store.start(StartRequest(task_id="t"))).execution
    await store.finish(
        FinishRequest(span_id=first.span_id, status="failed", error=ErrorInput(type="E", message="m"))
    )
    retry = (await store.start(StartRequest(task_id="t", retry_of=first.span_id))).execution
    page = await store.list_executions(ExecutionFilter(retrying=True))
    assert [e.span_id for e in page.executions] == [retry.span_id]


@pytest.mark.parametrize("cursor", ["garbage", "eyJ4IjoxfQ", "W10"])
async def test_a_garbled_cursor_is_an_error_naming_cursor(store: Store, cursor: str) -> None:
    with pytest.raises(InvalidInput) as caught:
        await store.list_executions(cursor=cursor)
    assert caught.value.field == "cursor"


async def test_a_cursor_from_other_filters_is_refused(store: Store) -> None:
    for minute in range(3):
        await record(store, "t", minute)
    page = await store.list_executions(limit=1)
    with pytest.raises(InvalidInput, match="different filters"):
        await store.list_executions(ExecutionFilter(task_id="t"), limit=1, cursor=page.next_cursor)


@pytest.mark.parametrize("limit", [0, 101, 10**9])
async def test_a_limit_out_of_range_is_an_error(store: Store, limit: int) -> None:
    with pytest.raises(InvalidInput) as caught:
        await store.list_executions(limit=limit)
    assert caught.value.field == "limit"


async def test_an_unknown_trace_is_an_empty_view_not_an_error(store: Store) -> None:
    view = await store.trace(str(uuid.uuid4()))
    assert (view.found, view.executions, view.events, view.final_status) == (False, [], [], None)


async def test_a_trace_orders_attempts_and_reports_the_last_outcome(store: Store) -> None:
    first = (await store.start(StartRequest(task_id="t"))).execution
    await store.finish(
        FinishRequest(span_id=first.span_id, status="failed", error=ErrorInput(type="E", message="m"))
    )
    second = (await store.start(StartRequest(task_id="t", retry_of=first.span_id))).execution
    await store.finish(FinishRequest(span_id=second.span_id, status="success"))
    view = await store.trace(first.trace_id.upper())
    assert [e.attempt for e in view.executions] == [1, 2]
    assert (view.retry_count, view.final_status) == (1, "success")


async def test_last_failed_counts_every_failure_in_the_window_and_groups_by_stack(store: Store) -> None:
    for user in range(12):
        stack, message = real_stack(user)
        await store.record(RecordRequest(
            task_id=f"job-{user % 3}", status="failed", started_at=T0 + timedelta(minutes=user),
            error=ErrorInput(type="KeyError", message=message, stack=stack),
        ))  # fmt: skip
    await record(store, "other", 30, "failed")
    result = await store.last_failed(limit=5)
    assert result.total_failures == 13 and result.has_more and len(result.failures) == 5
    top = result.error_patterns[0]
    assert (top.count, top.error_type, result.patterns_total) == (12, "KeyError", 2)
    assert top.first_seen == T0 and top.last_seen == T0 + timedelta(minutes=11)


async def test_unique_errors_keeps_the_latest_failure_of_each_stack(store: Store) -> None:
    for user in range(4):
        stack, message = real_stack(user)
        await store.record(RecordRequest(
            task_id="job", status="failed", started_at=T0 + timedelta(minutes=user),
            error=ErrorInput(type="KeyError", message=message, stack=stack),
        ))  # fmt: skip
    await record(store, "other", 30, "failed")
    result = await store.last_failed(unique_errors=True)
    assert len(result.failures) == 2
    assert result.failures[1].execution.started_at == T0 + timedelta(minutes=3)


async def test_last_failed_honours_task_and_time_window(store: Store) -> None:
    for minute in range(6):
        await record(store, "a" if minute % 2 else "b", minute, "failed")
    result = await store.last_failed(task_id="a", since=T0 + timedelta(minutes=2))
    assert [f.execution.task_id for f in result.failures] == ["a", "a"] and result.total_failures == 2


async def test_a_failure_carries_the_events_that_led_to_it(store: Store) -> None:
    from store.models import EventRequest

    for minute, event_type in enumerate(("task_created", "task_started")):
        await store.log_event(
            EventRequest(event_type=event_type, task_id="t", ts=T0 + timedelta(minutes=minute))
        )
    await store.log_event(EventRequest(
        event_type="task_failed", task_id="t", ts=T0 + timedelta(minutes=3),
        data={"error": {"type": "OSError", "message": "disk full"}},
    ))  # fmt: skip
    failure = (await store.last_failed()).failures[0]
    assert [e.event_type for e in failure.recent_events] == ["task_created", "task_started", "task_failed"]


async def test_getting_an_unknown_span_is_not_found_with_a_hint(store: Store) -> None:
    with pytest.raises(NotFound, match="tasks_list"):
        await store.get(str(uuid.uuid4()))


async def test_a_task_timeline_tells_its_story_in_order_and_says_when_it_is_cut(store: Store) -> None:
    from store.models import EventRequest

    for minute in range(4):
        await record(store, "t", minute)
    await store.log_event(EventRequest(event_type="task_blocked", task_id="t", ts=T0 + timedelta(minutes=9)))
    full = await store.timeline("t")
    assert [e.started_at for e in full.executions] == [T0 + timedelta(minutes=m) for m in range(4)]
    assert (full.executions_total, full.events_total, full.truncated) == (4, 1, False)
    cut = await store.timeline("t", limit=2)
    assert cut.truncated and [e.started_at.minute for e in cut.executions] == [2, 3]
